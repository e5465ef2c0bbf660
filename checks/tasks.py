"""Celery task for the brand checks: on the "ingest" queue (CPU work), after the asset is stored."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def asset_check(asset_id: int) -> None:
    from checks import services

    services.asset_check_run(asset_id=asset_id)
