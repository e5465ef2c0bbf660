"""Signals the campaigns layer sends for the layers above it (the API's webhooks).

Sent after the change is committed; apps above connect receivers instead of being imported here.
"""

from __future__ import annotations

from django.dispatch import Signal

# Assets changed review status. Keyword arguments: events (the ReviewEvent rows written).
assets_reviewed = Signal()
