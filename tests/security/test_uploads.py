"""Issue 9, item 8: upload size is refused early (Content-Length), a file part stops being read at
the limit, and the number of files per request is capped."""

from __future__ import annotations

import io

from django.test import Client, override_settings
from django.test.client import (
    BOUNDARY,
    MULTIPART_CONTENT,
    FakePayload,
    encode_multipart,
)
from django.urls import reverse

from campaigns.models import ReferenceImage
from tests.base import StudioTestCase


class CountingPayload(FakePayload):
    """The test client's request body, counting what the server reads of it."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = super().readline(size)
        self.bytes_read += len(data)
        return data


class UploadLimitTests(StudioTestCase):
    def url(self) -> str:
        return reverse("campaigns:reference-upload", args=[self.brand.code])

    def post_body(
        self, body: bytes, **extra: str
    ) -> tuple[int, bytes, CountingPayload]:
        client = Client()
        client.force_login(self.eddie)
        payload = CountingPayload(body)
        environ = {
            "CONTENT_TYPE": MULTIPART_CONTENT,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": payload,
            **extra,
        }
        response = client.generic("POST", self.url(), **environ)
        return response.status_code, response.content, payload

    @override_settings(STUDIO_REQUEST_MAX_BYTES=1024 * 1024)
    def test_a_body_over_the_limit_is_refused_from_content_length_unread(self) -> None:
        body = encode_multipart(
            BOUNDARY,
            {"role": "product", "file": io.BytesIO(b"\0" * (2 * 1024 * 1024))},
        )
        status, content, payload = self.post_body(body)
        self.assertEqual(status, 413)
        self.assertIn("the limit is 1.0\xa0MB".encode(), content)
        self.assertEqual(payload.bytes_read, 0)
        self.assertFalse(ReferenceImage.objects.exists())

    @override_settings(STUDIO_UPLOAD_MAX_BYTES=256 * 1024)
    def test_a_file_part_stops_being_read_at_the_limit(self) -> None:
        size = 8 * 1024 * 1024
        file = io.BytesIO(b"\x89PNG" + b"\0" * size)
        file.name = "huge.png"  # type: ignore[attr-defined]
        body = encode_multipart(BOUNDARY, {"role": "product", "file": file})
        status, content, payload = self.post_body(body)
        self.assertEqual(status, 413)
        self.assertIn(b"huge.png", content)
        # Read up to the limit plus one chunk of the parser (64 KiB) and the small fields,
        # never the 8 MiB that followed.
        self.assertLess(payload.bytes_read, 256 * 1024 + 3 * 64 * 1024)
        self.assertFalse(ReferenceImage.objects.exists())

    def test_more_files_than_allowed_in_one_request_is_a_400(self) -> None:
        files = []
        for n in range(21):
            f = io.BytesIO(b"x")
            f.name = f"f{n}.png"  # type: ignore[attr-defined]
            files.append(f)
        body = encode_multipart(BOUNDARY, {"role": "product", "file": files})
        status, _, _ = self.post_body(body)
        self.assertEqual(status, 400)
        self.assertFalse(ReferenceImage.objects.exists())
