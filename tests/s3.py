"""A real S3-protocol server for tests: each class gets its own moto_server on 127.0.0.1 with one
bucket, and the default storage is django-storages' S3Storage on it, configured as production's
(presigned URLs with querystring auth, no overwrite)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import boto3
from django.test import override_settings

from tests.base import StudioTestCase
from tests.generation.servers import free_port

CREDENTIALS = {
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "region_name": "us-east-1",
}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """A moto_server (from this venv) and its endpoint URL, once it accepts connections."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


class S3TestCase(StudioTestCase):
    """The default storage is a bucket (`bucket`) on a moto_server of this class's own."""

    bucket: ClassVar[str] = "studio-media"
    server: ClassVar[subprocess.Popen[bytes]]
    endpoint: ClassVar[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls.server, cls.endpoint = start_moto()
        cls.s3().create_bucket(Bucket=cls.bucket)
        storage_override = override_settings(
            STORAGES={
                "default": {
                    "BACKEND": "storages.backends.s3.S3Storage",
                    "OPTIONS": {
                        "bucket_name": cls.bucket,
                        "endpoint_url": cls.endpoint,
                        "access_key": CREDENTIALS["aws_access_key_id"],
                        "secret_key": CREDENTIALS["aws_secret_access_key"],
                        "region_name": CREDENTIALS["region_name"],
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
        storage_override.enable()
        cls.addClassCleanup(cls._stop_moto)
        cls.addClassCleanup(storage_override.disable)
        super().setUpClass()

    @classmethod
    def _stop_moto(cls) -> None:
        cls.server.terminate()
        cls.server.wait(timeout=10)

    @classmethod
    def s3(cls) -> Any:
        """A boto3 client for the test's own checks (listing, reading objects)."""
        return boto3.client("s3", endpoint_url=cls.endpoint, **CREDENTIALS)
