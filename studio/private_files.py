"""Serving private media: files are never public, so every view that shows one goes through here.

Local files are streamed by this process. Object storage (S3) answers `storage.url()` with a
short-lived presigned URL, so the browser is redirected there and the bytes skip this process.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control

# A redirect to a presigned URL must not outlive the URL's signature.
REDIRECT_MAX_AGE = 60


def serve_private_file(
    file: FieldFile,
    *,
    content_type: str,
    filename: str,
    max_age: int,
    immutable: bool = False,
    as_attachment: bool = False,
) -> HttpResponseBase:
    """Stream `file` (or redirect to its presigned URL), cached privately for `max_age` seconds.

    The caller has already checked that the request may see the file. Attachments are always
    streamed so the download keeps `filename`.
    """
    if not file.name:
        raise Http404
    storage = file.storage
    response: HttpResponseBase
    url = None if as_attachment else direct_url(storage, file.name)
    if url is not None:
        response = HttpResponseRedirect(url)
        patch_cache_control(response, private=True, max_age=REDIRECT_MAX_AGE)
        return response
    try:
        handle = storage.open(file.name, "rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=as_attachment,
        filename=filename,
    )
    # patch_cache_control writes "immutable=False" for a False value: pass it only when set.
    extra = {"immutable": True} if immutable else {}
    patch_cache_control(response, private=True, max_age=max_age, **extra)
    return response


def direct_url(storage: Storage, name: str) -> str | None:
    """An absolute URL the storage serves itself (an S3 presigned URL), or None.

    FileSystemStorage answers with a path under MEDIA_URL, which is deliberately not served, so
    local files are streamed instead.
    """
    try:
        url = storage.url(name)
    except NotImplementedError:
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None
