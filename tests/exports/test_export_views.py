"""Export pages: roles and tenancy on the server, the task run eagerly, the private download."""

from __future__ import annotations

import io
import json
import zipfile

from django.test import override_settings
from django.urls import reverse

from exports import services
from exports.models import BrandExportProfile, ExportPack
from tests.base import StudioTestCase
from tests.exports.helpers import approved_asset


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
class ExportViewsTest(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.assets = [approved_asset(cls.campaign, size=(640, 800)) for _ in range(2)]
        cls.pending = approved_asset(cls.campaign, review_status="pending")

    def _new(self, user: object, **data: object) -> object:
        self.client.force_login(user)
        return self.client.post(reverse("exports:pack-new"), data)

    def test_an_editor_exports_a_campaign_and_the_worker_builds_it(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            response = self._new(
                self.eddie,
                campaign=self.campaign.code,
                build=1,
                presets=["instagram-square"],
                custom="300x250",
                formats=["jpeg", "png"],
            )
        pack = ExportPack.objects.get()
        self.assertRedirects(response, reverse("exports:pack-detail", args=[pack.code]))
        self.assertEqual(pack.state, "succeeded", pack.error)
        self.assertEqual((pack.total, pack.done), (8, 8))
        self.assertEqual(pack.created_by, self.eddie)
        # Any member downloads it; the bytes are a ZIP with the manifest.
        self.client.force_login(self.bob)
        download = self.client.get(reverse("exports:pack-download", args=[pack.code]))
        self.assertEqual(download.status_code, 200)
        self.assertIn("private", download["Cache-Control"])
        data = b"".join(download.streaming_content)
        manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
        self.assertEqual(len(manifest["renditions"]), 8)
        page = self.client.get(reverse("exports:pack-detail", args=[pack.code]))
        self.assertContains(page, "Download")
        listing = self.client.get(reverse("exports:pack-list"))
        self.assertContains(listing, self.campaign.name)

    def test_the_gallery_selection_posts_to_the_form_first(self) -> None:
        codes = [str(a.code) for a in self.assets]
        response = self._new(self.eddie, asset=codes)
        self.assertContains(response, "2 selected images")
        self.assertContains(response, 'name="asset"', count=2)
        self.assertFalse(ExportPack.objects.exists())

    def test_a_viewer_cannot_ask_for_a_pack_or_edit_presets(self) -> None:
        response = self._new(
            self.bob, campaign=self.campaign.code, build=1, formats=["jpeg"]
        )
        self.assertEqual(response.status_code, 403)
        presets_url = reverse("exports:brand-presets", args=[self.brand.code])
        self.assertEqual(self.client.get(presets_url).status_code, 200)
        self.assertEqual(
            self.client.post(presets_url, {"channel_keys": ["tiktok"]}).status_code, 403
        )
        self.assertFalse(BrandExportProfile.objects.exists())

    def test_another_workspace_gets_404_for_everything(self) -> None:
        pack = services.export_pack_request(
            workspace=self.workspace, campaign=self.campaign, dispatch=False
        )
        services.export_pack_build(pack_id=pack.pk)
        self.client.force_login(self.carol)
        for name in ("pack-detail", "pack-download"):
            self.assertEqual(
                self.client.get(
                    reverse(f"exports:{name}", args=[pack.code])
                ).status_code,
                404,
            )
        self.assertEqual(
            self.client.post(
                reverse("exports:pack-cancel", args=[pack.code])
            ).status_code,
            404,
        )
        response = self.client.post(
            reverse("exports:pack-new"), {"campaign": self.campaign.code, "build": 1}
        )
        self.assertEqual(response.status_code, 404)
        response = self.client.post(
            reverse("exports:pack-new"), {"asset": [str(self.assets[0].code)]}
        )
        self.assertEqual(response.status_code, 404)
        self.assertNotContains(
            self.client.get(reverse("exports:pack-list")), pack.title
        )

    def test_brand_presets_are_edited_with_custom_sizes_and_used(self) -> None:
        self.client.force_login(self.eddie)
        url = reverse("exports:brand-presets", args=[self.brand.code])
        response = self.client.post(
            url,
            {
                "channel_keys": ["instagram-story"],
                "custom_presets": "shop-banner 1600x500 Shop banner",
            },
        )
        self.assertRedirects(response, url)
        pack = services.export_pack_request(
            workspace=self.workspace, campaign=self.campaign, dispatch=False
        )
        self.assertEqual(
            [p["key"] for p in pack.presets], ["instagram-story", "shop-banner"]
        )
        services.export_pack_build(pack_id=pack.pk)
        pack.refresh_from_db()
        with pack.file.open("rb") as handle:
            names = zipfile.ZipFile(io.BytesIO(handle.read())).namelist()
        self.assertTrue(any(n.startswith("shop-banner/") for n in names))
        # embed_prompt off: the marking stays, the prompt goes.
        with pack.file.open("rb") as handle:
            data = zipfile.ZipFile(io.BytesIO(handle.read())).read(
                next(n for n in names if n.endswith(".jpg"))
            )
        self.assertIn(b"trainedAlgorithmicMedia", data)
        self.assertNotIn(b"leather bag", data)

    def test_a_canceled_pack_stops_and_leaves_no_file(self) -> None:
        pack = services.export_pack_request(
            workspace=self.workspace, campaign=self.campaign, dispatch=False
        )
        self.client.force_login(self.eddie)
        self.client.post(reverse("exports:pack-cancel", args=[pack.code]))
        self.assertIsNone(services.export_pack_build(pack_id=pack.pk))
        pack.refresh_from_db()
        self.assertEqual((pack.state, pack.file.name), ("canceled", ""))

    def test_expired_packs_lose_their_file(self) -> None:
        from django.utils import timezone

        pack = services.export_pack_request(
            workspace=self.workspace, campaign=self.campaign, dispatch=False
        )
        pack = services.export_pack_build(pack_id=pack.pk)
        storage, name = pack.file.storage, pack.file.name
        ExportPack.objects.filter(pk=pack.pk).update(expires_at=timezone.now())
        self.assertEqual(services.export_packs_sweep()["expired"], 1)
        pack.refresh_from_db()
        self.assertEqual(pack.state, "expired")
        self.assertFalse(storage.exists(name))
