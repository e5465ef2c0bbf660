"""Catalog tasks: thin, by id (house rule 12)."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def product_image_fetch(image_id: int) -> None:
    from catalog import fetching

    fetching.product_image_fetch(image_id=image_id)


@shared_task(acks_late=True)
def catalog_import_run(import_id: int) -> None:
    from catalog import services

    services.catalog_import_job_run(import_id=import_id)


@shared_task(acks_late=True)
def marketplace_check(asset_id: int) -> None:
    from catalog import services

    services.marketplace_check_asset(asset_id=asset_id)
