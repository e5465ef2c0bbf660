"""Variant batches: many generations of one template version, planned and dispatched together."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.db import models

from studio.models import Workspace


class BatchState(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELED = "canceled", "Canceled"


class Batch(models.Model):
    """A set of variants of one template version, expanded, priced and dispatched together.

    `spec` is everything the expansion needs (generation/batches/spec.py, BatchSpec.as_json): the mode
    (matrix or rows) with its values, the seeds (with the RNG seed that drew random ones), the
    backend/model targets, the sizes, the reference per slot and whether the brand kit is merged,
    so the same spec always expands to the same generations. The state is stored for lists and
    filters; the counts per generation state are always read from the generations themselves.
    """

    State = BatchState

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="batches"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="batches"
    )
    brand = models.ForeignKey(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="batches"
    )
    template_version = models.ForeignKey(
        "campaigns.TemplateVersion",
        null=True,
        on_delete=models.SET_NULL,
        related_name="batches",
    )
    name = models.CharField(max_length=160, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(
        max_length=12, choices=BatchState.choices, default=BatchState.DRAFT
    )
    spec = models.JSONField(default=dict)
    size = models.PositiveIntegerField(default=0)
    estimate_total = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0")
    )
    # {"bfl": {"count": 12, "total": "0.3600"}, "preview": {...}}
    estimate_by_backend = models.JSONField(default=dict, blank=True)
    # "Re-run with one axis changed": the batch this one copies, and what differs.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
    )
    changed = models.CharField(max_length=500, blank=True)
    # The builder form's one-time token: a double click dispatches one batch, not two.
    request_token = models.UUIDField(null=True, blank=True, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "request_token"],
                name="unique_batch_request_token",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="batch_recent")
        ]

    def __str__(self) -> str:
        return self.name or f"Batch {str(self.code)[:8]}"

    @property
    def is_active(self) -> bool:
        return self.state in (BatchState.QUEUED, BatchState.RUNNING)

    @property
    def owner_key(self) -> str:
        """The fair queue's owner for all of this batch's generations (generation/fair.py)."""
        return f"batch:{self.code}"
