"""API tokens and outgoing webhook subscriptions, per workspace."""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.db import models

from studio.models import Role, Workspace


class ApiToken(models.Model):
    """A workspace's token. Only a SHA-256 of the secret is stored; the secret is shown once.

    Each token acts through its own service user, a member of the workspace with the token's
    role: the review and batch services check roles and record authors by user, so the API
    goes through exactly the checks the pages do.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="api_tokens"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=Role.choices)
    # The first characters of the secret, shown in the token list to tell tokens apart.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_token"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.role}) in {self.workspace}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class WebhookEvent(models.TextChoices):
    GENERATION_SUCCEEDED = "generation.succeeded"
    GENERATION_FAILED = "generation.failed"
    BATCH_FINISHED = "batch.finished"
    ASSET_APPROVED = "asset.approved"
    ASSET_REJECTED = "asset.rejected"
    EXPORT_READY = "export.ready"


class WebhookSubscription(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    # Standard Webhooks secret ("whsec_" + base64); receivers verify with it.
    secret = models.CharField(max_length=100)
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    """One event for one subscription; every attempt updates it (the delivery log)."""

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    # The Standard Webhooks message id: the same for every attempt (receivers dedupe on it).
    message_id = models.CharField(max_length=64)
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField()
    state = models.CharField(
        max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subscription", "-created_at"])]
        constraints = [
            # One row per occurrence and subscription: racing emitters record it once.
            models.UniqueConstraint(
                fields=["subscription", "message_id"], name="one_delivery_per_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription}"
