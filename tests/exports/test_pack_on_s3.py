"""The issue's "done when": 50 approved assets → 4 presets × 2 formats, built by the export task
into an S3-protocol server (moto_server: tests/s3.py), downloaded through
the presigned URL the pack page hands out, and every file checked against the manifest
(dimensions, bytes, sha256) and for its Digital Source Type with exiftool."""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import urllib.request
import zipfile
from hashlib import sha256
from pathlib import Path
from typing import Any

from django.urls import reverse
from PIL import Image

from exports import services
from exports.tasks import export_pack_build_task
from tests.exports.helpers import approved_asset, has_exiftool
from tests.s3 import S3TestCase

BUCKET = "studio-packs"
ASSETS = 50


class PackOnS3Tests(S3TestCase):
    bucket = BUCKET

    def test_fifty_assets_four_presets_two_formats_through_s3(self) -> None:
        assets = [
            approved_asset(
                self.campaign,
                size=(960, 960),
                variables={"headline": f"Offer {i}"},
                focal=((i % 5) / 4, 0.5) if i % 2 else None,
            )
            for i in range(ASSETS)
        ]
        approved_asset(self.campaign, size=(960, 960), review_status="pending")
        pack = services.export_pack_request(
            workspace=self.workspace,
            user=self.eddie,
            campaign=self.campaign,
            preset_names=["square", "portrait", "16x9", "email"],
            formats=["jpeg", "webp"],
            dispatch=False,
        )
        export_pack_build_task(pack.pk)  # the task's body, in this process
        pack.refresh_from_db()
        self.assertEqual(pack.state, "succeeded", pack.error)
        self.assertTrue(pack.file.name.startswith("exports/"))

        # Any member downloads it: a presigned URL of the bucket, fetched without credentials.
        self.client.force_login(self.bob)
        response = self.client.get(reverse("exports:pack-download", args=[pack.code]))
        self.assertEqual(response.status_code, 302)
        url = response["Location"]
        self.assertTrue(url.startswith(f"{self.endpoint}/{BUCKET}/exports/"), url)
        self.assertIn("X-Amz-Signature=", url)
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (local moto)
            data = answer.read()
        self.assertEqual(len(data), pack.byte_size)

        folder = Path(self.enterContext(tempfile.TemporaryDirectory()))
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            rows = manifest["renditions"]
            self.assertEqual(len(rows), ASSETS * 4 * 2)
            self.assertEqual(
                set(zf.namelist()),
                {r["file"] for r in rows}
                | {"manifest.json", "manifest.csv", "README.txt"},
            )
            self.assertEqual(
                {r["asset_id"] for r in rows}, {str(a.code) for a in assets}
            )
            for row in rows:
                body = zf.read(row["file"])
                self.assertEqual(sha256(body).hexdigest(), row["sha256"], row["file"])
                self.assertEqual(len(body), row["bytes"])
                with Image.open(io.BytesIO(body)) as image:
                    self.assertEqual(image.size, (row["width"], row["height"]))
                    self.assertEqual(image.format.lower(), row["format"])
                target = folder / row["file"]
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(body)
        sizes = {(r["preset"], r["width"], r["height"]) for r in rows}
        self.assertIn(("instagram-square", 1080, 1080), sizes)  # 960 → 1080: 1.125×
        self.assertIn(("web-hero", 1200, 675), sizes)  # needs 2×: flagged, 1.25×
        self.assertTrue(manifest["flagged"])

        if not has_exiftool():
            self.skipTest("exiftool missing (scripts/test.sh installs it)")
        tags: list[dict[str, Any]] = json.loads(
            subprocess.check_output(
                ["exiftool", "-j", "-r", "-XMP-iptcExt:DigitalSourceType", str(folder)],
                text=True,
            )
        )
        self.assertEqual(len(tags), len(rows))
        for item in tags:
            self.assertEqual(
                item.get("DigitalSourceType"),
                "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                item["SourceFile"],
            )
