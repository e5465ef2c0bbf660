"""Celery tasks of the API: webhook deliveries (thin: the work is in webhooks_out)."""

from __future__ import annotations

from celery import shared_task

from api import webhooks_out


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver(delivery_id: int) -> None:
    delay = webhooks_out.delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        webhook_deliver.apply_async((delivery_id,), countdown=delay)
