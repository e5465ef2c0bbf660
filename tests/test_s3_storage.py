"""Media on S3-compatible object storage, against a real S3-protocol server (moto_server).

Production keeps references and generated images in a bucket (django-storages' S3Storage): the
same services must write there, the private views must hand out short-lived presigned URLs, and
deleting must remove the objects.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import override_settings

from campaigns.references import reference_create, reference_delete
from generation.models import Asset
from tests.base import StudioTestCase
from tests.factories import image_bytes

BUCKET = "studio-media"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3StorageTests(StudioTestCase):
    server: subprocess.Popen[bytes]
    endpoint: str

    @classmethod
    def setUpClass(cls) -> None:
        port = _free_port()
        moto = Path(sys.executable).with_name("moto_server")
        cls.server = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cls.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or cls.server.poll() is not None:
                    cls.server.kill()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        cls.s3().create_bucket(Bucket=BUCKET)
        cls.storage_override = override_settings(
            STORAGES={
                "default": {
                    "BACKEND": "storages.backends.s3.S3Storage",
                    "OPTIONS": {
                        "bucket_name": BUCKET,
                        "endpoint_url": cls.endpoint,
                        "access_key": "test",
                        "secret_key": "test",
                        "region_name": "us-east-1",
                        "addressing_style": "path",
                        "signature_version": "s3v4",
                        "file_overwrite": False,
                        "querystring_auth": True,
                        "querystring_expire": 300,
                    },
                },
                "staticfiles": {
                    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
                },
            }
        )
        cls.storage_override.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls.storage_override.disable()
        cls.server.terminate()
        cls.server.wait(timeout=10)

    @classmethod
    def s3(cls) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=cls.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )

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
