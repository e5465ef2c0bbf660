"""Encryption at rest for provider credentials (Fernet, with key rotation).

Keys come from `settings.FIELD_ENCRYPTION_KEYS` (comma-separated Fernet keys, newest first). The
first key encrypts; every key decrypts, so rotating is: put a new key in front, run
`reencrypt()` over the stored values (ProviderAccount.rotate_key), then drop the old key.
With no key configured, one is derived from SECRET_KEY (HKDF) so development works with no setup;
production should set FIELD_ENCRYPTION_KEYS so that rotating SECRET_KEY does not lose the
credentials.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class DecryptionError(Exception):
    """The value was encrypted with a key that is no longer configured (or was tampered with)."""


def derived_key(secret: str) -> bytes:
    """A Fernet key derived from SECRET_KEY; the `info` label keeps it apart from other uses."""
    raw = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"flux-studio/field-encryption/v1",
    ).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...], secret: str) -> MultiFernet:
    material = [key.encode() for key in keys] or [derived_key(secret)]
    return MultiFernet([Fernet(key) for key in material])


def _fernet() -> MultiFernet:
    keys = tuple(getattr(settings, "FIELD_ENCRYPTION_KEYS", None) or ())
    return _multifernet(keys, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "the stored credential cannot be decrypted with the configured keys"
        ) from exc


def reencrypt(token: str) -> str:
    """Re-encrypt under the current first key (MultiFernet.rotate); raises DecryptionError."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "the stored credential cannot be decrypted with the configured keys"
        ) from exc
