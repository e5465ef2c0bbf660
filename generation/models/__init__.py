"""Provider accounts, generations (the durable state machine), the assets they produce, variant
batches and the review of assets, one module each; imported here so Django registers them under
the "generation" app and callers keep importing from generation.models.
"""

from __future__ import annotations

from generation.models.accounts import ProviderAccount
from generation.models.assets import Asset, ReviewTally, asset_upload_to
from generation.models.batches import Batch, BatchState
from generation.models.generations import (
    ACTIVE_STATES,
    FAIR_QUEUE,
    TERMINAL_STATES,
    Generation,
    GenerationQuerySet,
    GenerationState,
    cap_key_for,
    parse_cap_key,
)
from generation.models.review import Comment, ReviewEvent, ReviewStatus

__all__ = [
    "ACTIVE_STATES",
    "FAIR_QUEUE",
    "TERMINAL_STATES",
    "Asset",
    "Batch",
    "BatchState",
    "Comment",
    "Generation",
    "GenerationQuerySet",
    "GenerationState",
    "ProviderAccount",
    "ReviewEvent",
    "ReviewStatus",
    "ReviewTally",
    "asset_upload_to",
    "cap_key_for",
    "parse_cap_key",
]
