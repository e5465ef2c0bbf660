"""Signals for apps above generation (checks), so generation never imports them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ingest once an asset's file is stored and its generation succeeded (also on a re-ingest,
# which overwrites the file). Keyword argument: asset_id. Receivers must not do slow work inline:
# they run in the ingest task, before the next image is ingested; enqueue a task instead.
asset_stored = Signal()
