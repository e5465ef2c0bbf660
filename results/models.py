"""Ad performance brought back from the ad platforms, per asset.

An import (`ResultImport`) is one CSV file as the platform exported it, with the column mapping it was
read with, every row that matched no asset (listed, never dropped) and its counts. Each matched row is an
`AdResult`, keyed by (campaign, source, period, ad name): a later export of the same period from the same
source replaces those rows instead of adding to them, while other periods (another day, another month)
add up. An asset's totals are the sum of its rows.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.db import models

from campaigns.models import Campaign
from generation.models import Asset
from studio.models import Workspace


class ResultMapping(models.Model):
    """A saved column mapping (the presets for Meta, Google, LinkedIn and TikTok live in code)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="result_mappings"
    )
    name = models.CharField(max_length=80)
    # role -> CSV column name, e.g. {"ad_name": "Ad name", "impressions": "Impressions", ...}
    columns = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="result_mapping_unique_name"
            )
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ResultImport(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="result_imports"
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="result_imports"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    file_name = models.CharField(max_length=255)
    # What the rows are keyed by: the preset or saved mapping's name ("Meta Ads Manager").
    source = models.CharField(max_length=80)
    columns = models.JSONField(default=dict)
    rows = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    replaced = models.PositiveIntegerField(default=0)
    # [{"line": 7, "ad_name": "Spring promo"}, ...]
    unmatched = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.source})"


class AdResult(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="ad_results"
    )
    asset = models.ForeignKey(
        Asset, on_delete=models.CASCADE, related_name="ad_results"
    )
    result_import = models.ForeignKey(
        ResultImport, on_delete=models.CASCADE, related_name="results"
    )
    source = models.CharField(max_length=80)
    # The reporting period as the file states it ("2026-11-01..2026-11-30", a day), or "" when the
    # file has no date column: then the latest export of that source stands for the whole run.
    period = models.CharField(max_length=60, blank=True)
    ad_name = models.CharField(max_length=500)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    conversions = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(max_digits=14, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "source", "period", "ad_name"],
                name="ad_result_unique_row",
            )
        ]
        indexes = [models.Index(fields=["campaign", "asset"])]

    def __str__(self) -> str:
        return f"{self.ad_name}: {self.clicks}/{self.impressions}"
