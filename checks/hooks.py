"""How checks plugs into generation without generation importing it: the ingest signal, and the
gallery's flag filters and card data (generation.gallery.queries.FLAG_FILTERS, CARD_RELATED)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from generation import signals
from generation.gallery import queries as gallery
from generation.models import Asset


def on_asset_stored(sender: Any, *, asset_id: int, **kwargs: Any) -> None:
    if not settings.CHECKS_ENABLED:
        return
    from checks.tasks import asset_check

    # After commit: the worker must see the asset row; never inline, the ingest task goes on.
    transaction.on_commit(lambda: asset_check.delay(asset_id))


def _flag(field: str) -> Callable[[QuerySet[Asset]], QuerySet[Asset]]:
    def narrow(assets: QuerySet[Asset]) -> QuerySet[Asset]:
        return assets.filter(**{f"brand_check__{field}": True})

    return narrow


FLAGS = {
    "needs-review": ("Needs review", "needs_review"),
    "off-palette": ("Off-palette", "off_palette"),
    "text-mismatch": ("Text mismatch", "text_mismatch"),
    "logo-missing": ("Logo missing", "logo_missing"),
    "product-missing": ("Product missing", "product_missing"),
}


def connect() -> None:
    signals.asset_stored.connect(on_asset_stored, dispatch_uid="checks.asset_stored")
    for key, (label, field) in FLAGS.items():
        gallery.FLAG_FILTERS[key] = (label, _flag(field))
    if "brand_check" not in gallery.CARD_RELATED:
        gallery.CARD_RELATED.append("brand_check")
