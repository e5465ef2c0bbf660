"""Signals of the exports app, for features above it (the API's `export.ready` webhook)."""

from django.dispatch import Signal

# Sent after commit when a pack is built and stored: pack_id (int), workspace_id (int).
pack_ready = Signal()
