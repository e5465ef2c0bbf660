"""A workspace's provider accounts: the credentials for one backend, stored encrypted."""

from __future__ import annotations

from uuid import uuid4

from django.db import models
from django.db.models import Q

from generation import crypto
from studio.models import Workspace


class ProviderAccount(models.Model):
    """A workspace's credentials for one backend. The key is stored encrypted and never shown again."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="provider_accounts"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    backend = models.CharField(max_length=32)
    label = models.CharField(max_length=120, blank=True)
    # Fernet token (generation/crypto.py); the plaintext never touches the database.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # The last four characters, so people can tell keys apart without seeing them.
    api_key_last4 = models.CharField(max_length=4, blank=True, editable=False)
    # Empty: the backend's default (for BFL the global endpoint); e.g. https://api.eu.bfl.ai for the EU.
    base_url = models.URLField(max_length=300, blank=True)
    region = models.CharField(max_length=32, blank=True)
    # Active tasks the provider allows this account (BFL: 24 unless raised); empty: ENGINE_CONCURRENCY.
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "backend", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "backend"],
                condition=Q(enabled=True),
                name="one_enabled_account_per_backend",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label or self.backend} ({self.masked_key})"

    def set_api_key(self, plaintext: str) -> None:
        plaintext = plaintext.strip()
        self.api_key_encrypted = crypto.encrypt(plaintext) if plaintext else ""
        self.api_key_last4 = plaintext[-4:] if len(plaintext) >= 8 else ""

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def has_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def key_readable(self) -> bool:
        """False when the stored key cannot be decrypted with the configured keys (SECRET_KEY
        changed without FIELD_ENCRYPTION_KEYS): the admin must enter it again."""
        try:
            self.api_key  # noqa: B018
        except crypto.DecryptionError:
            return False
        return True

    @property
    def masked_key(self) -> str:
        if not self.api_key_encrypted:
            return "no key"
        return f"…{self.api_key_last4}" if self.api_key_last4 else "set"

    def rotate_key(self) -> None:
        """Re-encrypt under the current first FIELD_ENCRYPTION_KEYS key (call save() after)."""
        if self.api_key_encrypted:
            self.api_key_encrypted = crypto.reencrypt(self.api_key_encrypted)
