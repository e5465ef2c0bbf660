"""Signals the generation layer sends for the layers above it (checks, the API's webhooks and waiters).

Apps above generation (docs/architecture.md) must not be imported from here; they connect receivers
instead.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ingest once an asset's file is stored and its generation succeeded (also on a re-ingest,
# which overwrites the file). Keyword argument: asset_id. Receivers must not do slow work inline:
# they run in the ingest task, before the next image is ingested; enqueue a task instead.
asset_stored = Signal()

# A generation reached a terminal state, sent after the change is committed, so a receiver reads
# what it was told. Keyword arguments: generation_id, state.
generation_finished = Signal()

# Assets changed review status (generation/review.py), sent after the change is committed. Keyword
# argument: events (the ReviewEvent rows written).
assets_reviewed = Signal()
