"""Upload limits enforced while the body arrives, not after it is on disk (docs/security.md).

- `RequestSizeLimitMiddleware` answers 413 from the Content-Length header alone when a request
  body is over STUDIO_REQUEST_MAX_BYTES: nothing of it is read.
- `CappedUploadHandler` (first in FILE_UPLOAD_HANDLERS) counts the bytes of each file part and
  stops the upload as soon as one passes STUDIO_UPLOAD_MAX_BYTES: the rest is never read or
  written; the middleware then answers 413 naming the file.
- The number of files per request is Django's DATA_UPLOAD_MAX_NUMBER_FILES (a 400 above it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.html import escape

REFUSED_ATTR = "studio_upload_refused"


def _mib(n: int) -> str:
    return filesizeformat(n)


def too_large(request: HttpRequest, message: str) -> HttpResponse:
    """413 with the reason: a fragment for the uploader script (it shows it next to the file),
    else a small page."""
    if request.headers.get(
        "X-Requested-With"
    ) == "XMLHttpRequest" or request.headers.get("HX-Request"):
        body = f'<span class="error-text">{escape(message)}</span>'
    else:
        body = (
            "<!doctype html><title>Upload too large</title><h1>Upload too large</h1>"
            f"<p>{escape(message)}</p>"
        )
    return HttpResponse(body, status=413, content_type="text/html; charset=utf-8")


class CappedUploadHandler(FileUploadHandler):
    """Stops reading a file part at STUDIO_UPLOAD_MAX_BYTES (and with it the whole request)."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        limit = settings.STUDIO_UPLOAD_MAX_BYTES
        if self.received > limit:
            if self.request is not None:
                setattr(
                    self.request,
                    REFUSED_ATTR,
                    f"“{self.file_name}” is over the {_mib(limit)} limit per file.",
                )
            # connection_reset: do not read the rest of the body either.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the file


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.STUDIO_REQUEST_MAX_BYTES
        if length > limit:
            return too_large(
                request,
                f"This request is {_mib(length)}; the limit is {_mib(limit)} "
                f"(and {_mib(settings.STUDIO_UPLOAD_MAX_BYTES)} per file).",
            )
        if request.method == "POST" and request.content_type == "multipart/form-data":
            # Parse here, before anything else reads the body, so a file stopped at its limit
            # is answered 413 instead of reaching a view with the file missing.
            request.POST  # noqa: B018
            if refused := getattr(request, REFUSED_ATTR, None):
                return too_large(request, refused)
        return self.get_response(request)
