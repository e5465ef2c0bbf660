"""Media on S3-compatible object storage, against a real S3-protocol server (moto_server).

Production keeps references and generated images in a bucket (django-storages' S3Storage): the
same services must write there, the private views must hand out short-lived presigned URLs, and
deleting must remove the objects.
"""

from __future__ import annotations

import tempfile
import urllib.request
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from campaigns.references import reference_create, reference_delete
from generation.models import Asset
from tests.factories import image_bytes
from tests.s3 import S3TestCase

BUCKET = "studio-media"


class S3StorageTests(S3TestCase):
    bucket = BUCKET

    def keys(self) -> set[str]:
        listing = self.s3().list_objects_v2(Bucket=BUCKET)
        return {item["Key"] for item in listing.get("Contents", [])}

    def test_a_reference_is_stored_served_by_presigned_url_and_deleted(self) -> None:
        reference = reference_create(
            brand=self.brand,
            uploaded_file=SimpleUploadedFile(
                "pack.png", image_bytes(size=(300, 200)), "image/png"
            ),
            user=self.eddie,
            role="product",
            tags=["s3"],
        )
        self.assertIn(reference.file.name, self.keys())
        self.assertIn(reference.thumbnail.name, self.keys())

        self.client.force_login(self.bob)
        response = self.client.get(f"/references/{reference.code}/image")
        self.assertEqual(response.status_code, 302)
        url = response["Location"]
        self.assertTrue(url.startswith(f"{self.endpoint}/{BUCKET}/"), url)
        self.assertIn("X-Amz-Signature=", url)
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (local moto server)
            self.assertEqual(
                answer.read(), default_storage.open(reference.file.name).read()
            )

        # Another workspace never gets the URL.
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.get(f"/references/{reference.code}/image").status_code, 404
        )

        # Files are removed once the delete has committed.
        with self.captureOnCommitCallbacks(execute=True):
            reference_delete(reference=reference)
        self.assertNotIn(reference.file.name, self.keys())
        self.assertNotIn(reference.thumbnail.name, self.keys())

    def test_a_generated_image_and_its_thumbnail_land_in_the_bucket(self) -> None:
        out = Path(self.enterContext(tempfile.TemporaryDirectory())) / "out.png"
        call_command(
            "generate",
            "--backend=preview",
            "--prompt=A red mug on a marble table",
            "--width=256",
            "--height=256",
            "--seed=7",
            f"--out={out}",
            f"--workspace={self.workspace.slug}",
        )
        asset = Asset.objects.get()
        self.assertIn(asset.file.name, self.keys())
        self.assertIn(asset.thumbnail.name, self.keys())
        stored = self.s3().get_object(Bucket=BUCKET, Key=asset.file.name)["Body"].read()
        self.assertEqual(stored, out.read_bytes())
