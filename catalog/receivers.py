"""Marketplace checks run on every stored image made for a main-image shot (generation's signal)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from generation.signals import asset_stored


@receiver(asset_stored, dispatch_uid="catalog-marketplace-check")
def on_asset_stored(sender: Any, asset_id: int, **kwargs: Any) -> None:
    from catalog.models import ProductGeneration
    from catalog.tasks import marketplace_check

    if ProductGeneration.objects.filter(
        generation__asset__pk=asset_id, shot__marketplace_main=True
    ).exists():
        transaction.on_commit(lambda: marketplace_check.delay(asset_id))
