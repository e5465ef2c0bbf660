"""Which assets a gallery shows: a workspace's, a brand's, a campaign's or a batch's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from campaigns.models import Brand, Campaign
from generation.models import Asset
from studio.models import Workspace


@dataclass(frozen=True)
class Scope:
    """Which assets a gallery shows: a workspace's, a brand's, a campaign's or a batch's."""

    workspace: Workspace
    brand: Brand | None = None
    campaign: Campaign | None = None
    batch: Any = None  # generation.Batch

    @property
    def kind(self) -> str:
        if self.batch is not None:
            return "batch"
        if self.campaign is not None:
            return "campaign"
        if self.brand is not None:
            return "brand"
        return "workspace"

    @property
    def scope_brand(self) -> Brand | None:
        if self.brand is not None:
            return self.brand
        if self.campaign is not None:
            return self.campaign.brand
        if self.batch is not None:
            return self.batch.brand
        return None

    def assets(self) -> QuerySet[Asset]:
        # Asset.campaign/batch are copies of the generation's, each with its own
        # (…, created_at, id) index; a brand's assets are found through their generations.
        assets = Asset.objects.filter(workspace=self.workspace)
        if self.batch is not None:
            return assets.filter(batch=self.batch)
        if self.campaign is not None:
            return assets.filter(campaign=self.campaign)
        if self.brand is not None:
            return assets.filter(generation__brand=self.brand)
        return assets
