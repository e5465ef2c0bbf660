"""Assets (the stored image a generation produced) and the review tallies kept over them."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.models.generations import Generation
from generation.models.review import ReviewStatus
from studio.models import Workspace


def asset_upload_to(instance: Asset, filename: str) -> str:
    return (
        f"generations/{instance.workspace.code}/{instance.generation.code}/{filename}"
    )


class Asset(models.Model):
    """The stored result of one generation (written once, by ingest, with update_or_create)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="assets"
    )
    generation = models.OneToOneField(
        Generation, on_delete=models.CASCADE, related_name="asset"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    # Deterministic keys: generations/<workspace code>/<generation code>/image.<ext>, thumb.webp.
    file = models.FileField(upload_to=asset_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=asset_upload_to, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8)  # "jpeg", "png", "webp", "avif"
    content_type = models.CharField(max_length=40)
    byte_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    # Review: generation/review.py decides (roles, audit events, comments) and changes these
    # through generation/assets.py with conditional UPDATEs. Export packs and brand checks will
    # add their own rows pointing here; nothing of them lives on this model yet.
    ReviewStatus = ReviewStatus
    review_status = models.CharField(
        max_length=20,
        choices=ReviewStatus.choices,
        default=ReviewStatus.PENDING,
        db_index=True,
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    starred = models.BooleanField(default=False)
    tags = models.ManyToManyField("campaigns.Tag", blank=True, related_name="assets")
    # Focal point as fractions of the width and height from the top left (0..1); null: centre.
    # Crops for other formats keep it in frame.
    focal_x = models.FloatField(null=True, blank=True)
    focal_y = models.FloatField(null=True, blank=True)
    # Copies of the generation's campaign and batch (set by ingest, never changed), so that a
    # gallery page is an index range scan on (campaign|batch, created_at, id): constant time at
    # any depth, however many other campaigns' assets the workspace holds. Through a join the
    # planner walks the workspace's newest assets until it finds the campaign's.
    # No single-column indexes: the composite ones below start with these columns.
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    batch = models.ForeignKey(
        "Batch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # What the image cost (the provider's charge, else the estimate), copied at ingest so the
    # gallery's cost sorts are index scans like its date sorts (a sort through the generation
    # join reads and sorts the whole scope on every page).
    cost = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The cost sorts, per scope (scanned backwards for "cheapest first").
            models.Index(
                fields=["campaign", "-cost", "-id"], name="asset_campaign_cost"
            ),
            models.Index(fields=["batch", "-cost", "-id"], name="asset_batch_cost"),
            models.Index(
                fields=["workspace", "-cost", "-id"], name="asset_workspace_cost"
            ),
            models.Index(
                fields=["workspace", "-created_at"], name="asset_workspace_recent"
            ),
            # Gallery pages and the approval progress. review_status and workspace are included
            # so that the status counts are index-only scans (the workspace filter included):
            # without them the planner reads the workspace's other campaigns' rows as well.
            models.Index(
                fields=["campaign", "-created_at", "-id"],
                include=["review_status", "workspace"],
                name="asset_campaign_scope",
            ),
            models.Index(
                fields=["batch", "-created_at", "-id"],
                include=["review_status", "workspace"],
                name="asset_batch_scope",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(focal_x__isnull=True, focal_y__isnull=True)
                    | Q(focal_x__gte=0, focal_x__lte=1, focal_y__gte=0, focal_y__lte=1)
                ),
                name="asset_focal_point_in_frame",
            )
        ]

    def __str__(self) -> str:
        return f"{self.generation.code} {self.width}×{self.height} {self.format}"

    @property
    def thumb_size(self) -> tuple[int, int]:
        """The thumbnail's pixel size (ingest fits it in ENGINE_THUMBNAIL_SIZE), for srcset."""
        side = int(getattr(settings, "ENGINE_THUMBNAIL_SIZE", 512))
        scale = min(1.0, side / max(self.width, self.height, 1))
        return max(1, round(self.width * scale)), max(1, round(self.height * scale))


class ReviewTally(models.Model):
    """Assets per review status of one gallery scope, kept by PostgreSQL triggers on the asset
    table (migration 0007): the gallery's status counts read a few rows instead of counting every
    asset of the campaign. Triggers, not application code, so that every write counts: ingest's
    upsert, review actions, bulk UPDATEs, cascades. Rows are never removed (a scope that lost
    its assets keeps zeros); scope ids are not foreign keys, so a deleted workspace, campaign
    or batch leaves harmless orphans instead of blocking its own deletion.
    """

    class Kind(models.TextChoices):
        WORKSPACE = "w", "Workspace"
        CAMPAIGN = "c", "Campaign"
        BATCH = "b", "Batch"

    kind = models.CharField(max_length=1, choices=Kind.choices)
    scope_id = models.BigIntegerField()
    review_status = models.CharField(max_length=20)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "scope_id", "review_status"], name="review_tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope_id} {self.review_status}={self.n}"
