"""Safe result downloads, shared by the backends whose providers hand back a result URL.

A `HostPolicy` says which hosts may receive our key (polling URLs) or serve results; each backend
builds its own from the provider's hosts and its configuration. `download_image` GETs a signed
result URL with no credentials: allowed hosts only (each redirect hop checked again, names
resolving to private addresses refused), size capped, image/* only, the bytes decoded with Pillow.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image

from generation.backends.base import BackendError, ErrorClass, PollResult
from generation.backends.transport import client, parse_retry_after, transport_error

MAX_REDIRECTS = 3
MAX_RESULT_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 4 * 2048 * 2048
# Texts of a 4xx that mean a signed URL is no longer valid (Azure blob storage, S3, GCS).
EXPIRED_MARKERS = (
    "authenticationfailed",
    "signature",
    "expired",
    "authorizationfailure",
)


def result_cap(extra: Mapping[str, str]) -> int:
    """The largest result download in bytes: extra's "max_result_bytes", else MAX_RESULT_BYTES."""
    return int(extra.get("max_result_bytes") or MAX_RESULT_BYTES)


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (a seam for tests)."""
    return [
        str(info[4][0])
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


def is_public(address: str) -> bool:
    """Whether an IP address is globally routable (not private, loopback, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts may receive our key (polling) or serve results (downloads)."""

    patterns: tuple[str, ...]  # ".domain" (itself and subdomains) or exact hosts
    # Exact hosts named by configuration: may be private and plain http.
    explicit: frozenset[str]

    @classmethod
    def build(
        cls, base_url: str, extra_hosts: Iterable[str], defaults: Iterable[str]
    ) -> HostPolicy:
        """The provider's `defaults`, the configured `extra_hosts` and the base URL's host.

        An entry starting with "." matches a domain and its subdomains; any other is an exact
        host, and only exact entries (and the base URL's host) may be private or plain http.
        """
        extras = [h.strip().lower() for h in extra_hosts if h.strip()]
        base_host = (urlsplit(base_url).hostname or "").lower()
        explicit = {h for h in extras if not h.startswith(".")}
        if base_host:
            explicit.add(base_host)
        return cls(
            patterns=(*defaults, *extras, *sorted(explicit)),
            explicit=frozenset(explicit),
        )

    def allows_host(self, host: str) -> bool:
        """Whether `host` matches one of the patterns."""
        host = host.lower().rstrip(".")
        for pattern in self.patterns:
            if pattern.startswith("."):
                if host.endswith(pattern) or host == pattern[1:]:
                    return True
            elif host == pattern:
                return True
        return False

    def check(self, url: str, *, what: str, resolve: bool) -> None:
        """Raise BackendError unless `url` may be contacted. `resolve` also refuses names that
        resolve to private/loopback/link-local addresses unless the host is explicitly allowed."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()

        def refuse(reason: str) -> BackendError:
            return BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: refused {url.split('?', 1)[0]}: {reason}.",
                retryable=False,
                details={"host": host, "refused": True},
            )

        if parts.scheme not in ("http", "https") or not host:
            raise refuse("not an http(s) URL")
        if not self.allows_host(host):
            raise refuse(f"{host} is not one of the provider's hosts")
        if host in self.explicit:
            return
        if parts.scheme != "https":
            raise refuse("plain http to a provider host")
        try:
            ipaddress.ip_address(host.strip("[]"))
            addresses = [host.strip("[]")]
        except ValueError:
            if not resolve:
                return
            try:
                addresses = resolve_host(host, parts.port or 443)
            except OSError as exc:
                raise BackendError(
                    ErrorClass.NETWORK,
                    f"{what}: cannot resolve {host} ({exc}).",
                    retryable=True,
                ) from exc
        if not all(is_public(a) for a in addresses):
            raise refuse(f"{host} is a private, loopback or link-local address")


def verify_image(data: bytes, *, max_pixels: int | None = MAX_PIXELS) -> str:
    """Decode `data` fully with Pillow; return its MIME type or raise BAD_RESULT."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise BackendError(
                    ErrorClass.BAD_RESULT,
                    f"result is {image.width}×{image.height} px, too large.",
                    retryable=False,
                )
            image.load()
            fmt = image.format or ""
    except BackendError:
        raise
    except Exception as exc:  # Pillow raises many types for bad data
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result is not a decodable image ({type(exc).__name__}: {exc}).",
            retryable=True,
        ) from exc
    mime = Image.MIME.get(fmt, "")
    if not mime.startswith("image/"):
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"result has unexpected format {fmt!r}.",
            retryable=True,
        )
    return mime


def read_image_body(
    response: httpx.Response,
    *,
    what: str,
    max_bytes: int,
    limit_s: float | None = None,
    since: float = 0.0,
) -> bytes:
    """The body of a streamed 200 image answer: image/* only, at most `max_bytes`, read within
    `limit_s` seconds of the monotonic time `since` (if a limit is given). Not decoded: see
    verify_image."""
    content_type = (
        response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    )
    if not content_type.startswith("image/"):
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: content type {content_type or 'missing'}, not an image.",
            retryable=True,
            status_code=response.status_code,
        )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise BackendError(
            ErrorClass.BAD_RESULT,
            f"{what}: {length} bytes is over the {max_bytes}-byte cap.",
            retryable=False,
        )
    buffer = bytearray()
    for chunk in response.iter_bytes():
        buffer += chunk
        if len(buffer) > max_bytes:
            raise BackendError(
                ErrorClass.BAD_RESULT,
                f"{what}: over the {max_bytes}-byte cap.",
                retryable=False,
            )
        if limit_s is not None and time.monotonic() - since > limit_s:
            raise BackendError(
                ErrorClass.TIMEOUT, f"{what}: took over {limit_s:g} s.", retryable=True
            )
    return bytes(buffer)


def download_image(
    url: str,
    *,
    policy: HostPolicy,
    timeout: httpx.Timeout,
    max_bytes: int,
    deadline_s: float = 120.0,
    what: str = "result download",
) -> tuple[bytes, str]:
    """GET a provider's result URL: allowed hosts only, redirects checked hop by hop, size capped,
    image/* only, bytes verified with Pillow. No credentials are sent (the URL is signed)."""
    started = time.monotonic()
    for _hop in range(MAX_REDIRECTS + 1):
        policy.check(url, what=what, resolve=True)
        try:
            with client().stream(
                "GET", url, timeout=timeout, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise BackendError(
                            ErrorClass.BAD_RESULT,
                            f"{what}: redirect without Location.",
                            retryable=True,
                        )
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise download_error(response, what)
                data = read_image_body(
                    response,
                    what=what,
                    max_bytes=max_bytes,
                    limit_s=deadline_s,
                    since=started,
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc
        return data, verify_image(data)
    raise BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: more than {MAX_REDIRECTS} redirects.",
        retryable=False,
    )


def download_error(response: httpx.Response, what: str) -> BackendError:
    """Map a non-200 answer of a result host: 403/404/410 (or a signature 4xx) is EXPIRED."""
    code = response.status_code
    try:
        text = response.read()[:4000].decode("utf-8", "replace")
    except httpx.HTTPError:
        text = ""
    lowered = text.lower()
    summary = " ".join(text.split())[:200]
    if code in (403, 404, 410) or (
        400 <= code < 500 and any(m in lowered for m in EXPIRED_MARKERS)
    ):
        return BackendError(
            ErrorClass.EXPIRED,
            f"{what}: the result URL has expired or is no longer valid "
            f"(HTTP {code}: {summary}).",
            retryable=False,
            status_code=code,
        )
    if code == 429:
        after = parse_retry_after(response.headers.get("retry-after"))
        return BackendError(
            ErrorClass.RATE_LIMITED,
            f"{what}: HTTP 429.",
            retryable=True,
            retry_after=after,
            status_code=code,
        )
    if code >= 500:
        return BackendError(
            ErrorClass.PROVIDER_ERROR,
            f"{what}: HTTP {code}.",
            retryable=True,
            status_code=code,
        )
    return BackendError(
        ErrorClass.BAD_RESULT,
        f"{what}: HTTP {code}: {summary}",
        retryable=False,
        status_code=code,
    )


def fetch_result(
    result: PollResult,
    *,
    policy: HostPolicy,
    timeout: httpx.Timeout,
    max_bytes: int,
) -> tuple[bytes, str]:
    """Backend.fetch for providers with result URLs: inline bytes verified, else downloaded."""
    if result.result_bytes is not None:
        return result.result_bytes, verify_image(result.result_bytes)
    if not result.result_url:
        raise BackendError(
            ErrorClass.BAD_RESULT, "fetch: the result has no URL.", retryable=False
        )
    return download_image(
        result.result_url, policy=policy, timeout=timeout, max_bytes=max_bytes
    )
