"""Verifying fal's webhook deliveries: Ed25519 signatures against fal's published JWKS
(docs/providers.md §2.7), the keys cached per URL."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from generation.backends.base import (
    BackendError,
    ErrorClass,
)
from generation.backends.download import HostPolicy
from generation.backends.transport import (
    client,
    json_or_none,
    transport_error,
)

# --- Webhook keys (JWKS) ------------------------------------------------------------------------

# An unknown signature refetches the keys (fal rotated them?) at most this often.
JWKS_MIN_REFRESH = 60.0
WEBHOOK_TOLERANCE = 300  # seconds between fal's timestamp and our clock

_jwks_cache: dict[str, tuple[float, tuple[Ed25519PublicKey, ...]]] = {}
_jwks_lock = threading.Lock()


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def keys_from_jwks(data: Any) -> tuple[Ed25519PublicKey, ...]:
    """The Ed25519 keys (`kty: OKP`, `crv: Ed25519`) of a JWKS document; others are skipped."""
    keys = []
    for jwk in data.get("keys", []) if isinstance(data, dict) else []:
        if (
            not isinstance(jwk, dict)
            or jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
        ):
            continue
        try:
            keys.append(
                Ed25519PublicKey.from_public_bytes(_b64url(str(jwk.get("x", ""))))
            )
        except (ValueError, binascii.Error):
            continue
    return tuple(keys)


def clear_jwks_cache() -> None:
    with _jwks_lock:
        _jwks_cache.clear()


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs: request id, user id, timestamp and the body's SHA-256 hex, one per line."""
    return "\n".join(
        (request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())
    ).encode()


def verify_delivery(headers: Mapping[str, str], body: bytes, keys: WebhookKeys) -> str:
    """The signed request id of a delivery whose Ed25519 signature verifies (docs/providers.md
    §2.7); AUTH (401) for a missing, stale or wrong signature."""
    lowered = {k.lower(): v for k, v in headers.items()}
    request_id = (lowered.get("x-fal-webhook-request-id") or "").strip()
    user_id = (lowered.get("x-fal-webhook-user-id") or "").strip()
    timestamp = (lowered.get("x-fal-webhook-timestamp") or "").strip()
    signature = (lowered.get("x-fal-webhook-signature") or "").strip()
    if not (request_id and user_id and timestamp and signature):
        raise BackendError(
            ErrorClass.AUTH,
            "webhook: fal signature headers missing.",
            status_code=401,
        )
    try:
        sent_at = int(timestamp)
        signature_bytes = bytes.fromhex(signature)
    except ValueError as exc:
        raise BackendError(
            ErrorClass.AUTH,
            "webhook: malformed fal signature headers.",
            status_code=401,
        ) from exc
    if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE:
        raise BackendError(
            ErrorClass.AUTH,
            f"webhook: timestamp {timestamp} is over {WEBHOOK_TOLERANCE} s old.",
            status_code=401,
        )
    message = signed_message(request_id, user_id, timestamp, body)
    if not keys.verify(signature_bytes, message):
        raise BackendError(
            ErrorClass.AUTH,
            "webhook: fal signature does not match.",
            status_code=401,
        )
    return request_id


# fal's JWKS is fetched and cached here rather than with PyJWT's PyJWKClient, although PyJWT can
# read OKP/Ed25519 JWKs: (1) PyJWT is not a dependency of the studio (not installed); (2)
# PyJWKClient fetches with urllib.request, which would bypass the egress guard every other outgoing
# call goes through (transport.client(): GuardedTransport, egress.py) and the jwks_policy host
# check; (3) its refresh is keyed on a JWT's `kid`, and fal's signatures are not JWTs and name no
# key: here a signature no cached key verifies refetches the set (fal rotated its keys), at most
# every JWKS_MIN_REFRESH seconds. Only the Ed25519 verification itself comes from a library
# (cryptography).
@dataclass(frozen=True)
class WebhookKeys:
    """fal's webhook signing keys published at `url`, cached per URL for `ttl` seconds."""

    url: str
    policy: HostPolicy
    timeout: httpx.Timeout
    ttl: float

    def verify(self, signature: bytes, message: bytes) -> bool:
        keys, fetched_at = self.fetch(force=False)
        if _any_verifies(keys, signature, message):
            return True
        if time.monotonic() - fetched_at < JWKS_MIN_REFRESH:
            return False
        # fal may have rotated its keys since we cached them.
        keys, _ = self.fetch(force=True)
        return _any_verifies(keys, signature, message)

    def fetch(self, *, force: bool) -> tuple[tuple[Ed25519PublicKey, ...], float]:
        now = time.monotonic()
        with _jwks_lock:
            cached = _jwks_cache.get(self.url)
        if cached and not force and now - cached[0] < self.ttl:
            return cached[1], cached[0]
        self.policy.check(self.url, what="webhook keys", resolve=True)
        try:
            response = client().get(self.url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "webhook keys") from exc
        if response.status_code != 200:
            raise BackendError(
                ErrorClass.NETWORK,
                f"webhook keys: HTTP {response.status_code} from {self.url}.",
                retryable=True,
            )
        keys = keys_from_jwks(json_or_none(response))
        if not keys:
            raise BackendError(
                ErrorClass.NETWORK,
                f"webhook keys: no Ed25519 key at {self.url}.",
                retryable=True,
            )
        with _jwks_lock:
            _jwks_cache[self.url] = (now, keys)
        return keys, now


def _any_verifies(
    keys: tuple[Ed25519PublicKey, ...], signature: bytes, message: bytes
) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
