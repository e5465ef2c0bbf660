"""What the API does when the layers below signal a change: wake waiters, emit webhooks.

Runs in whichever process made the change (a Celery worker, a web process), after commit. A
failure here is logged and swallowed: the engine's work is done and must not be undone by a
notification.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from api import representations, waiting, webhooks_out
from api.models import WebhookEvent
from exports.models import ExportPack
from exports.signals import pack_ready
from generation.batches.services import batch_sync_state
from generation.models import (
    ACTIVE_STATES,
    Asset,
    Batch,
    BatchState,
    Generation,
    GenerationState,
    ReviewStatus,
)
from generation.signals import assets_reviewed, generation_finished

logger = logging.getLogger(__name__)

FAILED = {GenerationState.FAILED, GenerationState.MODERATED, GenerationState.EXPIRED}


@receiver(generation_finished, dispatch_uid="api.generation_finished")
def on_generation_finished(
    sender: Any, generation_id: int, state: str, **kwargs: Any
) -> None:
    try:
        waiting.publish_finished(generation_id, state)
    except Exception:
        logger.exception("Could not wake API waiters of generation %s", generation_id)
    try:
        _emit_generation(generation_id, state)
    except Exception:
        logger.exception("Webhooks for generation %s failed", generation_id)


def _emit_generation(generation_id: int, state: str) -> None:
    generation = (
        Generation.objects.select_related(
            "asset", "campaign", "batch", "template_version"
        )
        .filter(pk=generation_id)
        .first()
    )
    if generation is None:
        return
    event = (
        WebhookEvent.GENERATION_SUCCEEDED
        if state == GenerationState.SUCCEEDED
        else WebhookEvent.GENERATION_FAILED
        if state in FAILED
        else None
    )
    if event is not None:
        webhooks_out.event_emit(
            workspace_id=generation.workspace_id,
            event=event,
            data=representations.generation(generation),
            message_key=f"{generation.code}:{state}",
        )
    if generation.batch is not None:  # no query when batch_id is None
        _batch_maybe_finished(generation.batch)


def _batch_maybe_finished(batch: Batch) -> None:
    if batch.state not in (BatchState.QUEUED, BatchState.RUNNING):
        return
    if Generation.objects.filter(batch=batch, state__in=ACTIVE_STATES).exists():
        return
    batch = batch_sync_state(batch=batch)
    if batch.state == BatchState.FINISHED and batch.finished_at is not None:
        webhooks_out.event_emit(
            workspace_id=batch.workspace_id,
            event=WebhookEvent.BATCH_FINISHED,
            data=representations.batch(batch),
            # Two workers may both see the batch finished; the same key records it once.
            message_key=f"{batch.code}:{batch.finished_at.isoformat()}",
        )


@receiver(assets_reviewed, dispatch_uid="api.assets_reviewed")
def on_assets_reviewed(sender: Any, events: list[Any], **kwargs: Any) -> None:
    try:
        wanted = {
            ReviewStatus.APPROVED: WebhookEvent.ASSET_APPROVED,
            ReviewStatus.REJECTED: WebhookEvent.ASSET_REJECTED,
        }
        relevant = [e for e in events if e.to_status in wanted]
        if not relevant:
            return
        assets = {
            a.pk: a
            for a in Asset.objects.select_related(
                "generation", "campaign", "batch"
            ).filter(pk__in=[e.asset_id for e in relevant])
        }
        for event in relevant:
            asset = assets.get(event.asset_id)
            if asset is None:
                continue
            webhooks_out.event_emit(
                workspace_id=event.workspace_id,
                event=wanted[event.to_status],
                data={
                    **representations.asset(asset),
                    "comment": event.comment,
                    "actor": event.actor.username if event.actor_id else None,
                },
                message_key=f"review:{event.pk}",
            )
    except Exception:
        logger.exception("Webhooks for review events failed")


@receiver(pack_ready, dispatch_uid="api.pack_ready")
def on_pack_ready(sender: Any, pack_id: int, workspace_id: int, **kwargs: Any) -> None:
    try:
        pack = ExportPack.objects.select_related("campaign", "batch").get(pk=pack_id)
        webhooks_out.event_emit(
            workspace_id=workspace_id,
            event=WebhookEvent.EXPORT_READY,
            data=representations.export_pack(pack),
            message_key=f"export:{pack.code}",
        )
    except Exception:
        logger.exception("Webhooks for export pack %s failed", pack_id)
