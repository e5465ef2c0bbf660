"""Importing ad-platform exports: matching rows to assets, replacing re-imports, the command, refusals."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from django.core.management import CommandError, call_command

from results import platforms, services
from results.models import AdResult, ResultImport, ResultMapping
from tests.base import StudioTestCase
from tests.factories import make_brand, make_campaign
from tests.generation.batch_helpers import make_version
from tests.results.helpers import export_name, factorial_batch, google_csv, meta_csv


class ImportTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(cls.brand, campaign=cls.campaign)
        cls.batch, cls.assets = factorial_batch(cls.campaign, cls.version, cls.alice)

    def _rows(self, scale: int = 1) -> list[tuple[str, int, int, int]]:
        return [
            (export_name(a), 10_000 * scale, (100 + 10 * i) * scale, (5 + i) * scale)
            for i, a in enumerate(self.assets)
        ]

    def test_meta_and_google_exports_of_one_campaign_match_every_row_naming_an_asset(
        self,
    ) -> None:
        meta_rows = self._rows() + [("Spring promo (no id)", 5000, 40, 1)]
        meta = services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="meta.csv",
            data=meta_csv(meta_rows),
        ).result_import
        self.assertEqual(meta.source, "Meta Ads Manager")
        self.assertEqual(meta.matched, len(self.assets))
        self.assertEqual(
            [u["ad_name"] for u in meta.unmatched], ["Spring promo (no id)"]
        )
        self.assertEqual(meta.unmatched[0]["line"], len(self.assets) + 2)

        # Google names ads by the full asset id, or by the generation's id, in any case.
        google_rows = [
            (str(self.assets[0].code).upper(), 8000, 90, 3),
            (f"Display {self.assets[1].generation.code}", 8000, 70, 2),
            (export_name(self.assets[2], "landscape"), 8000, 60, 1),
            ("Brand search", 20000, 900, 40),
        ]
        google = services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="google.csv",
            data=google_csv(google_rows),
        ).result_import
        self.assertEqual(google.source, "Google Ads")
        self.assertEqual(
            google.rows, 4
        )  # the title lines and the totals row are not rows
        self.assertEqual(google.matched, 3)
        self.assertEqual([u["ad_name"] for u in google.unmatched], ["Brand search"])

        results = services.campaign_results(self.campaign)
        self.assertEqual(len(results), 1)
        by_code = {str(v.asset.code): v for v in results[0].variants}
        first = by_code[str(self.assets[0].code)]
        self.assertEqual(first.impressions, 10_000 + 8000)
        self.assertEqual(first.clicks, 100 + 90)
        self.assertEqual(first.conversions, 5 + 3)

    def test_a_later_export_of_the_same_period_replaces_it(self) -> None:
        services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="a.csv",
            data=meta_csv(self._rows()),
        )
        again = services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="b.csv",
            data=meta_csv(self._rows(scale=2)),
        ).result_import
        self.assertEqual(again.replaced, len(self.assets))
        self.assertEqual(
            AdResult.objects.filter(campaign=self.campaign).count(), len(self.assets)
        )
        variant = services.campaign_results(self.campaign)[0].variants[0]
        self.assertEqual(variant.impressions, 20_000)  # not 30,000
        # Another period adds up.
        services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="c.csv",
            data=meta_csv(self._rows(), period="2026-12-01"),
        )
        variant = services.campaign_results(self.campaign)[0].variants[0]
        self.assertEqual(variant.impressions, 30_000)

    def test_rows_of_another_campaign_do_not_match(self) -> None:
        other = make_campaign(self.brand, name="Other")
        outcome = services.import_results(
            campaign=other,
            user=self.alice,
            file_name="m.csv",
            data=meta_csv(self._rows()),
        )
        self.assertEqual(outcome.result_import.matched, 0)
        self.assertEqual(len(outcome.result_import.unmatched), len(self.assets))

    def test_refusals_say_why(self) -> None:
        cases = {
            b"\x89PNG\r\n\x1a\n\x00\x00\x00": "binary",
            b"just,some,words\n1,2,3\n": "No header row",
            meta_csv(
                [(export_name(self.assets[0]), 100, 500, 0)]
            ): "500 clicks but only 100",
        }
        for data, reason in cases.items():
            with (
                self.subTest(reason=reason),
                self.assertRaisesMessage(services.ImportRefused, reason),
            ):
                services.import_results(
                    campaign=self.campaign,
                    user=self.alice,
                    file_name="x.csv",
                    data=data,
                )
        bad_number = meta_csv([(export_name(self.assets[0]), 100, 5, 0)]).replace(
            b",5,", b",five,"
        )
        with self.assertRaisesMessage(
            services.ImportRefused, "“five” in “Link clicks” is not a number"
        ):
            services.import_results(
                campaign=self.campaign,
                user=self.alice,
                file_name="x.csv",
                data=bad_number,
            )
        self.assertFalse(ResultImport.objects.exists())

    def test_guessing_the_four_platforms(self) -> None:
        headers = {
            "Meta Ads Manager": [
                "Ad name",
                "Impressions",
                "Link clicks",
                "Results",
                "Amount spent (USD)",
            ],
            "Google Ads": ["Ad name", "Impr.", "Clicks", "Conversions", "Cost"],
            "LinkedIn Campaign Manager": [
                "Creative Name",
                "Impressions",
                "Clicks",
                "Conversions",
                "Total Spent",
            ],
            "TikTok Ads Manager": [
                "Ad name",
                "Impression",
                "Clicks (Destination)",
                "Conversions",
                "Cost",
            ],
        }
        for preset, header in headers.items():
            with self.subTest(preset=preset):
                guessed, columns = platforms.guess_mapping(header)
                self.assertEqual(guessed, preset)
                self.assertEqual(columns["ad_name"], header[0])
                self.assertEqual(columns["impressions"], header[1])
                self.assertEqual(columns["clicks"], header[2])

    def test_numbers_as_platforms_write_them(self) -> None:
        for text, value in {
            "1,234": 1234,
            "1.234,5": 1234.5,
            "12,5": 12.5,
            "$1,200.50": 1200.5,
            "—": 0,
            "": 0,
        }.items():
            with self.subTest(text=text):
                self.assertEqual(
                    float(platforms._number(text, line=2, column="x")), value
                )

    def test_utf16_tab_separated_export(self) -> None:
        text = "Ad name\tImpr.\tClicks\n" + f"{export_name(self.assets[0])}\t1000\t10\n"
        outcome = services.import_results(
            campaign=self.campaign,
            user=self.alice,
            file_name="g.csv",
            data=text.encode("utf-16"),
        )
        self.assertEqual(outcome.result_import.matched, 1)


class CommandTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.version = make_version(cls.brand, campaign=cls.campaign)
        cls.batch, cls.assets = factorial_batch(cls.campaign, cls.version, cls.alice)

    def _file(self, data: bytes) -> str:
        import tempfile

        folder = Path(tempfile.mkdtemp())
        path = folder / "export.csv"
        path.write_bytes(data)
        self.addCleanup(lambda: (path.unlink(), folder.rmdir()))
        return str(path)

    def test_json_output(self) -> None:
        rows = [
            (export_name(a), 20_000, 200 + (300 if i == 0 else 0), 4)
            for i, a in enumerate(self.assets)
        ]
        rows.append(("Unrelated ad", 100, 1, 0))
        out = StringIO()
        call_command(
            "import_results",
            self._file(meta_csv(rows)),
            workspace=self.workspace.slug,
            campaign=str(self.campaign.code),
            json=True,
            stdout=out,
        )
        summary = json.loads(out.getvalue())
        self.assertEqual(summary["matched"], len(self.assets))
        self.assertEqual(summary["unmatched"], ["Unrelated ad"])
        by_asset = {v["asset"]: v for v in summary["variants"]}
        self.assertEqual(set(by_asset), {str(a.code) for a in self.assets})
        first = by_asset[str(self.assets[0].code)]
        self.assertEqual(first["impressions"], 20_000)
        self.assertEqual(first["clicks"], 500)
        self.assertEqual(first["conversions"], 4)
        self.assertAlmostEqual(first["ctr"], 0.025)
        self.assertGreater(first["p_best"], 0.95)
        self.assertAlmostEqual(
            sum(v["p_best"] for v in summary["variants"]), 1.0, places=2
        )

    def test_campaign_by_short_id_or_name_and_a_named_mapping(self) -> None:
        ResultMapping.objects.create(
            workspace=self.workspace,
            name="Our DSP",
            columns={"ad_name": "Creative", "impressions": "Views", "clicks": "Taps"},
        )
        data = f"Creative,Views,Taps\n{export_name(self.assets[0])},1000,12\n".encode()
        for code in (str(self.campaign.code)[:8], self.campaign.name):
            out = StringIO()
            call_command(
                "import_results",
                self._file(data),
                workspace=self.workspace.slug,
                campaign=code,
                mapping="Our DSP",
                json=True,
                stdout=out,
            )
            self.assertEqual(json.loads(out.getvalue())["matched"], 1)

    def test_refusals_exit_with_one_line(self) -> None:
        cases = [
            (
                {"workspace": "nope", "campaign": str(self.campaign.code)},
                "No workspace",
            ),
            ({"workspace": self.workspace.slug, "campaign": "ffffffff"}, "No campaign"),
            (
                {
                    "workspace": self.workspace.slug,
                    "campaign": str(self.campaign.code),
                    "mapping": "Nope",
                },
                "No mapping called",
            ),
        ]
        path = self._file(meta_csv([(export_name(self.assets[0]), 100, 1, 0)]))
        for options, reason in cases:
            with (
                self.subTest(reason=reason),
                self.assertRaisesMessage(CommandError, reason),
            ):
                call_command("import_results", path, **options, stdout=StringIO())
        with self.assertRaisesMessage(CommandError, "Cannot read"):
            call_command(
                "import_results",
                "/nonexistent.csv",
                workspace=self.workspace.slug,
                campaign=str(self.campaign.code),
                stdout=StringIO(),
            )

    def test_another_workspaces_campaign_is_not_found(self) -> None:
        brand = make_brand(self.other_workspace, name="Globex brand")
        theirs = make_campaign(brand, name="Theirs")
        with self.assertRaisesMessage(CommandError, "No campaign"):
            call_command(
                "import_results",
                self._file(meta_csv([])),
                workspace=self.workspace.slug,
                campaign=str(theirs.code),
                stdout=StringIO(),
            )
