"""Signals the generation layer sends for the layers above it (the API's webhooks and waiters).

Apps above generation (design.md) must not be imported from here; they connect receivers
instead. Each signal is sent after the change is committed, so a receiver reads what it was told.
"""

from __future__ import annotations

from django.dispatch import Signal

# A generation reached a terminal state. Keyword arguments: generation_id, state.
generation_finished = Signal()
