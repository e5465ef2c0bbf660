"""Where the studio's outgoing HTTP may go (server-side request forgery rules, docs/security.md).

A workspace admin types a provider account's base URL, and the worker then POSTs our key, the
prompt and reference bytes there. So:

- `check_base_url` (the operator form): https only, no userinfo, query or fragment, and a host
  that resolves to public addresses only.
- `GuardedBackend` (every connection of the pooled client, transport.py): the host is resolved
  at connect time, every address is checked, and the socket is opened to a checked address, so a
  name that re-resolves to 127.0.0.1 after the form check (DNS rebinding) gets nowhere. TLS still
  verifies the certificate against the host name (httpcore passes the name as SNI).

Private addresses and plain http are allowed only for what the operator names in settings:
`STUDIO_PRIVATE_ENDPOINTS` (host names or CIDR ranges), plus the hosts of the operator's own
backend variables (BFL_API_URL, COMFYUI_URL, ..., and exact `<BACKEND>_ALLOWED_HOSTS` entries).
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(httpx.TransportError):
    """A connection the egress rules refuse (an httpx error, so callers map it like the others)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order (a seam for tests)."""
    return [
        str(info[4][0])
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


def is_public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class PrivateAllowance:
    """The operator's exceptions: host names and networks that may be private or plain http."""

    hosts: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> PrivateAllowance:
        hosts: set[str] = set()
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        if host in self.hosts:
            return True
        try:
            return self.allows_address(ipaddress.ip_address(host))
        except ValueError:
            return False

    def allows_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def _setting(name: str) -> str:
    # generation/backends' one read of Django settings (lazy: the package imports without Django).
    # The guard checks every connection, including those of callers that hold no BackendConfig
    # (catalog URL fetches, outgoing API webhooks), so it reads the operator's settings itself,
    # at each check (tests override them).
    from django.conf import settings

    value = getattr(settings, name, None)
    return "" if value is None else str(value)


def _hosts_of_operator_settings() -> list[str]:
    """Hosts the operator configured for the backends themselves (settings)."""
    from generation.backends import registry

    hosts: list[str] = []
    for name in registry.ENV_NAMES:
        if name == "diffusers":  # its "URL" is a folder
            continue
        config = registry.config_from(name, _setting)
        if host := urlsplit(config.base_url).hostname:
            hosts.append(host)
        allowed = config.extra.get("allowed_hosts", "")
        hosts += [h for h in allowed.split(",") if h.strip() and h.strip()[0] != "."]
    return hosts


def allowance() -> PrivateAllowance:
    """STUDIO_PRIVATE_ENDPOINTS plus the hosts of the operator's backend settings."""
    from django.conf import settings

    entries = list(getattr(settings, "STUDIO_PRIVATE_ENDPOINTS", None) or ())
    return PrivateAllowance.parse([*entries, *_hosts_of_operator_settings()])


def checked_addresses(
    host: str, port: int, allow: PrivateAllowance | None = None
) -> list[str]:
    """Resolve `host` and answer its addresses if every one may be contacted; else refuse.

    An address may be contacted when it is public, or when the operator allows the host name or
    the address's network. One refused address refuses the host: a name that mixes public and
    private answers is a rebinding setup, not a provider.
    """
    allow = allowance() if allow is None else allow
    bare = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(bare))]
    except ValueError:
        addresses = []
    if not addresses:
        try:
            addresses = resolve(bare, port)
        except OSError as exc:
            raise EgressRefused(f"cannot resolve {host} ({exc})") from exc
        if not addresses:
            raise EgressRefused(f"{host} resolves to no address")
    named = allow.allows_host(bare)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not (is_public(address) or named or allow.allows_address(address)):
            raise EgressRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address "
                "(allowed only through the STUDIO_PRIVATE_ENDPOINTS setting)"
            )
    return addresses


def check_url(url: str, allow: PrivateAllowance | None = None) -> None:
    """The per-request rules: http(s), no userinfo, https unless the host is allowed private."""
    parts = urlsplit(url)
    allow = allowance() if allow is None else allow
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise EgressRefused(f"{parts.scheme or 'no'} scheme: only https URLs")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("credentials in the URL (user:password@) are not allowed")
    if parts.scheme == "http":
        addresses = checked_addresses(host, parts.port or 80, allow)
        if not (
            allow.allows_host(host)
            or all(allow.allows_address(ipaddress.ip_address(a)) for a in addresses)
        ):
            raise EgressRefused(
                f"plain http to {host}: only https, unless the operator allows the host"
            )


def check_base_url(url: str) -> str | None:
    """What is wrong with a base URL typed into a workspace form, or None when it may be used.

    https only (http only to a host the operator allows), no user:password@, no query string or
    fragment, and a host that resolves to public addresses (or is allowed by the operator)."""
    parts = urlsplit(url)
    if parts.query or url.rstrip().endswith("?"):
        return "A base URL cannot carry a query string (?…)."
    if parts.fragment or "#" in url:
        return "A base URL cannot carry a fragment (#…)."
    try:
        check_url(url)
        if parts.scheme == "https":
            checked_addresses(parts.hostname or "", parts.port or 443)
    except EgressRefused as exc:
        return f"This URL is not allowed: {exc}."
    return None


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the egress rules allow.

    The check and the connect use the same resolution: the socket goes to the very address that
    was checked (pinned), never to a second lookup of the name.
    """

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over GuardedBackend, with the URL rules checked on every request."""

    def __init__(self, *, limits: httpx.Limits, **kwargs: typing.Any) -> None:
        super().__init__(limits=limits, **kwargs)
        # The same pool httpx builds (its default TLS context), over the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url))
        return super().handle_request(request)
