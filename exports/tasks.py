"""Celery tasks for asset packs: thin, take ids, call a service. Queue "export" (CPU, long)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from exports import services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # Big packs take minutes: the global limits are sized for the engine's short tasks.
    time_limit=settings.EXPORT_TASK_TIME_LIMIT,
    soft_time_limit=settings.EXPORT_TASK_TIME_LIMIT - 30,
)
def export_pack_build_task(pack_id: int) -> None:
    services.export_pack_build(pack_id=pack_id)


@shared_task(ignore_result=True)
def export_packs_sweep_task() -> None:
    services.export_packs_sweep()
