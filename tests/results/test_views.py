"""The results pages: upload, mapping step, roles, the statistics shown, next round, rounds, versions."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from results.models import AdResult, ResultImport, ResultMapping
from tests.base import StudioTestCase
from tests.generation.batch_helpers import make_version
from tests.results.helpers import export_name, factorial_batch, meta_csv


class ResultsViewTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(cls.brand, campaign=cls.campaign)
        cls.batch, cls.assets = factorial_batch(cls.campaign, cls.version, cls.alice)
        cls.url = reverse("results:campaign-results", args=[cls.campaign.code])

    def _csv(self) -> bytes:
        # Headline "Warm up" lifts CTR by half, whatever the scene and the seed.
        rows = []
        for asset in self.assets:
            headline = asset.generation.variables["headline"]
            clicks = 750 if headline == "Warm up" else 500
            rows.append((export_name(asset), 50_000, clicks, clicks // 20))
        return meta_csv(rows + [("Retargeting (no id)", 1000, 10, 0)])

    def _upload(self, data: bytes, **extra: str):
        return self.client.post(
            reverse("results:results-upload", args=[self.campaign.code]),
            {"file": SimpleUploadedFile("meta.csv", data, "text/csv"), **extra},
        )

    def _confirm(self, page_html: str, **changes: str):
        fields = dict(
            re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page_html)
        )
        selected = dict(
            re.findall(
                r'<select name="(\w+)"[^>]*>(?:(?!</select>).)*?<option value="([^"]*)" selected>',
                page_html,
                re.S,
            )
        )
        data = {
            **selected,
            "token": fields["token"],
            "source": fields.get("source", ""),
            **changes,
        }
        return self.client.post(
            reverse("results:results-confirm", args=[self.campaign.code]), data
        )

    def test_an_editor_imports_through_the_mapping_step(self) -> None:
        self.client.force_login(self.eddie)
        page = self._upload(self._csv())
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertIn("Map the columns of meta.csv", html)
        self.assertIn("Meta Ads Manager", html)
        self.assertRegex(html, r'<option value="Link clicks" selected>')
        done = self._confirm(html, save_as="Meta (ours)")
        self.assertRedirects(done, self.url)
        imported = ResultImport.objects.get()
        self.assertEqual(imported.matched, len(self.assets))
        self.assertEqual(imported.source, "Meta (ours)")
        self.assertTrue(ResultMapping.objects.filter(name="Meta (ours)").exists())

        page = self.client.get(self.url).content.decode()
        self.assertIn("Retargeting (no id)", page)  # unmatched, listed
        self.assertIn('class="interval-chart"', page)
        self.assertIn("decided: Warm up", page)
        # The next round fixes the decided headline and keeps the rest of the batch.
        link = re.search(r'href="([^"]+)">Next round from the winners', page)
        self.assertIsNotNone(link)
        query = parse_qs(urlparse(link.group(1).replace("&amp;", "&")).query)
        self.assertEqual(query["from"], [str(self.batch.code)])
        self.assertIn("var:headline=Warm up", query["fix"])
        builder = self.client.get(link.group(1).replace("&amp;", "&"))
        self.assertEqual(builder.status_code, 200)
        builder_html = builder.content.decode()
        self.assertIn("Fixed at the winners: {headline} = Warm up", builder_html)
        matrix = re.search(
            r'<textarea name="matrix_headline"[^>]*>(.*?)</textarea>',
            builder_html,
            re.S,
        )
        self.assertEqual(matrix.group(1).strip(), "Warm up")

    def test_a_viewer_reads_but_cannot_import(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.get(self.url).status_code, 200)
        self.assertNotContains(self.client.get(self.url), "Read the columns")
        self.assertEqual(self._upload(self._csv()).status_code, 403)
        self.assertEqual(
            self.client.post(
                reverse("results:results-confirm", args=[self.campaign.code]),
                {"token": "x"},
            ).status_code,
            403,
        )
        self.assertFalse(ResultImport.objects.exists())

    def test_a_pending_upload_belongs_to_its_uploader(self) -> None:
        self.client.force_login(self.eddie)
        html = self._upload(self._csv()).content.decode()
        self.client.force_login(self.alice)
        answer = self._confirm(html)
        self.assertRedirects(answer, self.url, fetch_redirect_response=False)
        self.assertFalse(AdResult.objects.exists())
        self.assertContains(self.client.get(self.url), "upload the file again")

    def test_a_bad_file_is_refused_with_its_reason(self) -> None:
        self.client.force_login(self.eddie)
        answer = self._upload(b"\x89PNG\r\n\x1a\n\x00\x00")
        self.assertRedirects(answer, self.url, fetch_redirect_response=False)
        self.assertContains(
            self.client.get(self.url), "meta.csv: This is not a CSV file"
        )

    def test_a_mapping_without_the_required_roles_is_refused_at_the_field(self) -> None:
        self.client.force_login(self.eddie)
        html = self._upload(self._csv()).content.decode()
        answer = self._confirm(html, clicks="")
        self.assertEqual(answer.status_code, 200)
        self.assertContains(answer, "This field is required")
        self.assertFalse(AdResult.objects.exists())

    def test_too_early_is_said(self) -> None:
        self.client.force_login(self.eddie)
        rows = [(export_name(a), 200, 4, 0) for a in self.assets]
        self._confirm(self._upload(meta_csv(rows)).content.decode())
        self.assertContains(self.client.get(self.url), "Too early to call")

    def test_the_campaign_page_keeps_the_rounds_and_versions_show_ctr(self) -> None:
        self.client.force_login(self.eddie)
        self._confirm(self._upload(self._csv()).content.decode())
        campaign_page = self.client.get(
            reverse("campaigns:campaign-detail", args=[self.campaign.code])
        )
        self.assertContains(campaign_page, "Rounds")
        self.assertContains(campaign_page, str(self.batch))
        self.assertContains(campaign_page, "winner")
        versions = self.client.get(
            reverse("campaigns:template-versions", args=[self.version.template.code])
        )
        total_impressions = 50_000 * len(self.assets)
        self.assertContains(versions, f"{total_impressions} impr.")
        self.assertContains(versions, "CTR")
