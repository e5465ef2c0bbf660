"""Where an import's image files come from: a ZIP or a folder, and https URLs.

Names in the CSV are matched exactly first ("shots/a.jpg"), then by the file's own name in any
folder, case-insensitively ("A.JPG" finds "photos/a.jpg"), because shops zip their folders in
every way. A name that matches two files in different folders is refused as ambiguous rather
than guessed.

URLs are checked twice: here, when the row is read (https, no user:password@, no literal
private address), and by the worker that fetches them, through the studio's one HTTP client
whose transport applies the egress rules at connect time (generation/backends/egress.py), with
the size cap of every upload.
"""

from __future__ import annotations

import ipaddress
import os
import time
import zipfile
from pathlib import Path
from typing import IO
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings

from generation.backends.download import read_image_body
from generation.backends.egress import EgressRefused, check_url
from generation.backends.transport import client

MAX_REDIRECTS = 3


class ImageMissing(Exception):
    pass


class ImageSource:
    """The files of a ZIP or a folder, found by name."""

    def __init__(self, names: list[str]) -> None:
        self._exact = {n.replace("\\", "/").lstrip("./"): n for n in names}
        self._by_base: dict[str, list[str]] = {}
        for n in names:
            base = os.path.basename(n.replace("\\", "/")).lower()
            self._by_base.setdefault(base, []).append(n)

    def resolve(self, name: str) -> str:
        wanted = name.replace("\\", "/").lstrip("./")
        if wanted in self._exact:
            return self._exact[wanted]
        found = self._by_base.get(os.path.basename(wanted).lower(), [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ImageMissing(
                f"“{name}” matches {len(found)} files in different folders"
            )
        raise ImageMissing(f"“{name}” is not in the {self.kind}")

    kind = "images"

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ZipSource(ImageSource):
    kind = "ZIP"

    def __init__(self, file: str | Path | IO[bytes]) -> None:
        try:
            self._zip = zipfile.ZipFile(file)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"The images file is not a ZIP ({exc}).") from exc
        names = [
            i.filename
            for i in self._zip.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not os.path.basename(i.filename).startswith("._")
        ]
        super().__init__(names)

    def read(self, name: str) -> bytes:
        limit = settings.STUDIO_UPLOAD_MAX_BYTES
        # Read at most one byte over the cap: a ZIP bomb member never fills memory.
        with self._zip.open(self.resolve(name)) as handle:
            return handle.read(limit + 1)

    def close(self) -> None:
        self._zip.close()


class FolderSource(ImageSource):
    kind = "folder"

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()
        names = [
            str(p.relative_to(self._root)).replace(os.sep, "/")
            for p in self._root.rglob("*")
            if p.is_file()
        ]
        super().__init__(names)

    def read(self, name: str) -> bytes:
        path = (self._root / self.resolve(name)).resolve()
        if not path.is_relative_to(self._root):  # a symlink out of the folder
            raise ImageMissing(f"“{name}” is outside the folder")
        with path.open("rb") as handle:
            return handle.read(settings.STUDIO_UPLOAD_MAX_BYTES + 1)


def open_source(path: str | Path | None) -> ImageSource | None:
    if not path:
        return None
    if Path(path).is_dir():
        return FolderSource(path)
    return ZipSource(path)


def is_url(source: str) -> bool:
    return "://" in source[:12] or source.lower().startswith(("http:", "https:"))


def url_problem(url: str) -> str | None:
    """What is wrong with an image URL as written, or None (the worker checks the rest)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return f"“{url[:80]}” is not an https URL"
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    if not host or " " in url.strip():
        return f"“{url[:80]}” is not a valid URL"
    if parts.username is not None or parts.password is not None:
        return f"“{url[:80]}” carries user:password@, which is not allowed"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if host.lower() == "localhost" or (
        address is not None and not (address.is_global and not address.is_multicast)
    ):
        return f"“{url[:80]}” points at a private address"
    return None


def fetch_url(url: str) -> bytes:
    """GET an image URL under the egress rules: redirects checked hop by hop, size capped,
    image/* only. Raises EgressRefused, httpx errors or BackendError (all with a message)."""
    limit = settings.STUDIO_UPLOAD_MAX_BYTES
    timeout = httpx.Timeout(30.0, connect=10.0)
    started = time.monotonic()
    for _hop in range(MAX_REDIRECTS + 1):
        check_url(url)
        if urlsplit(url).scheme != "https":
            raise EgressRefused("only https image URLs are fetched")
        with client().stream("GET", url, timeout=timeout) as response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                continue
            if response.status_code != 200:
                raise EgressRefused(f"the server answered {response.status_code}")
            return read_image_body(
                response,
                what="image download",
                max_bytes=limit,
                limit_s=120.0,
                since=started,
            )
    raise EgressRefused(f"more than {MAX_REDIRECTS} redirects")
