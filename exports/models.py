"""Asset packs (ZIPs of approved work in every channel's size) and each brand's export settings.

Only exports/services.py changes a pack's state, each change one conditional UPDATE, so a
duplicate task delivery or a cancel racing the worker does nothing harmful.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.db import models

from studio.models import Workspace


class BrandExportProfile(models.Model):
    """A brand's export presets and provenance choice. No row: the defaults (exports/presets.py)."""

    brand = models.OneToOneField(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="export_profile"
    )
    # Keys of campaigns.channels.CHANNEL_FORMATS the brand exports to.
    channel_keys = models.JSONField(default=list, blank=True)
    # Sizes of the brand's own: [{"key": "shop-banner", "label": "Shop banner", "width": 1600,
    # "height": 500}]. A custom key equal to a channel key overrides that channel's size.
    custom_presets = models.JSONField(default=list, blank=True)
    # The prompt as the images' description in their XMP/IPTC metadata (some brands keep prompts
    # confidential); the "made by a generative model" marking itself is never turned off.
    embed_prompt = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Export settings of {self.brand}"


class PackState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Building"
    SUCCEEDED = "succeeded", "Ready"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


class ExportPackQuerySet(models.QuerySet["ExportPack"]):
    def for_workspace(self, workspace: Workspace) -> ExportPackQuerySet:
        return self.filter(workspace=workspace).select_related(
            "created_by", "campaign", "batch"
        )


def pack_upload_to(instance: ExportPack, filename: str) -> str:
    return f"exports/{instance.workspace.code}/{instance.code}/{filename}"


class ExportPack(models.Model):
    State = PackState

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="export_packs"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    # What was chosen: a campaign, a batch, or a selection (then both may be empty).
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    batch = models.ForeignKey(
        "generation.Batch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    title = models.CharField(max_length=200)
    # Asset primary keys, fixed when the pack is asked for: a later approval does not change it.
    asset_ids = models.JSONField(default=list)
    # The resolved presets [{"key", "label", "width", "height"}] and formats ["jpeg", "webp"].
    presets = models.JSONField(default=list)
    formats = models.JSONField(default=list)
    # {asset pk: "sku/hero_1"}: file names chosen by the asker (the catalog's export by product),
    # used instead of the readable stem; with no presets each image keeps its own size.
    names = models.JSONField(default=dict, blank=True)
    all_statuses = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    state = models.CharField(
        max_length=12, choices=PackState.choices, default=PackState.QUEUED
    )
    # Progress in renditions (asset × preset × format).
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to=pack_upload_to, max_length=300, blank=True)
    byte_size = models.BigIntegerField(null=True, blank=True)
    # [{"asset": "<short id>", "preset": "instagram-story", "needed": 1.5}] renditions that
    # needed more upscaling than EXPORT_MAX_UPSCALE allows (exported smaller than the preset).
    flagged = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = ExportPackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="exportpack_recent"),
            models.Index(fields=["state", "expires_at"], name="exportpack_expiry"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.state in (PackState.QUEUED, PackState.RUNNING)

    @property
    def percent(self) -> int:
        if self.state == PackState.SUCCEEDED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def asset_count(self) -> int:
        return len(self.asset_ids)

    @property
    def download_name(self) -> str:
        from django.utils.text import slugify

        return f"{slugify(self.title)[:80] or 'pack'}-{self.code.hex[:8]}.zip"


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def for_workspace(self, workspace: Workspace) -> ShareLinkQuerySet:
        return self.filter(workspace=workspace).select_related("created_by", "pack")


class ShareLink(models.Model):
    """An outside review link: a pack or a gallery selection shown to someone without an
    account (a client, an agency). Only the SHA-256 of its token is stored; the link is shown
    once, when made. It grants exactly `asset_ids`, until `expires_at` or until revoked."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="share_links"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    pack = models.ForeignKey(
        ExportPack,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="share_links",
    )
    asset_ids = models.JSONField(default=list)
    # Decisions taken through the link are recorded through the review services with this
    # member as the actor (marked external, with the reviewer's name): the creator vouches.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title


class ShareFeedback(models.Model):
    """One outside decision or comment: who (the name they gave), what, and the audit records
    it produced through the review services (a ReviewEvent and/or a Comment)."""

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approved"
        CHANGES = "changes", "Asked for changes"
        COMMENT = "comment", "Commented"

    link = models.ForeignKey(
        ShareLink, on_delete=models.CASCADE, related_name="feedback"
    )
    asset = models.ForeignKey(
        "generation.Asset", on_delete=models.CASCADE, related_name="+"
    )
    reviewer = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    comment = models.TextField(blank=True)
    review_event = models.ForeignKey(
        "generation.ReviewEvent", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_comment = models.ForeignKey(
        "generation.Comment", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.get_kind_display()}"
