"""Review on an asset: its statuses, the decisions taken (audit trail) and the comments.

generation/review.py writes them; generation/assets.py changes an asset's status.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.models import Workspace


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"


class ReviewEvent(models.Model):
    """One review decision on an asset: who, when, from → to, and why. Never edited."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(
        "Asset", on_delete=models.CASCADE, related_name="review_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_status = models.CharField(max_length=20, choices=ReviewStatus.choices)
    to_status = models.CharField(max_length=20, choices=ReviewStatus.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table keeps the name it had when review lived in campaigns (moved without a rebuild).
        db_table = "campaigns_reviewevent"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["asset", "-created_at"], name="review_event_asset")
        ]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class Comment(models.Model):
    """A note on an asset, visible to the whole workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(
        "Asset", on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "campaigns_comment"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["asset", "created_at"], name="comment_asset")]

    def __str__(self) -> str:
        return self.body[:60]
