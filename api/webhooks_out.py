"""Webhooks out: subscriptions per workspace, deliveries signed per the Standard Webhooks spec.

Each event becomes one WebhookDelivery row per subscription that listens for it (the delivery
log), then a Celery task POSTs it. A failed attempt is retried on API_WEBHOOK_RETRY_SCHEDULE
(5 s, 5 min, 30 min, 2 h, 5 h, 10 h: the last try about 18 h after the first); after that the
row is `failed` and an admin may redeliver it from the log. The message id stays the same on
every attempt, so receivers drop duplicates by `webhook-id`.

Target URLs follow the rule provider URLs follow (generation/backends/download.py): https to a
name that resolves to public addresses only, checked when saved and again before each attempt
(a name may be re-pointed); API_WEBHOOK_ALLOWED_HOSTS names hosts exempt from it (an internal
receiver, the tests' local one), which may also use plain http.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from api.models import (
    DeliveryState,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from generation.backends import download
from studio.models import Workspace

MAX_RESPONSE_NOTE = 300


class TargetRefused(ValueError):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_target(url: str, *, resolve: bool = True) -> None:
    """Raise TargetRefused unless `url` may receive our webhooks (the public-address rule)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefused("The URL must be http(s) with a host.")
    if parts.username or parts.password:
        raise TargetRefused("The URL must not carry credentials.")
    allowed = {h.lower() for h in settings.API_WEBHOOK_ALLOWED_HOSTS}
    if host in allowed:
        return
    if parts.scheme != "https":
        raise TargetRefused("Webhook URLs must use https.")
    if not resolve:
        return
    try:
        addresses = download.resolve_host(host, parts.port or 443)
    except OSError as exc:
        raise TargetRefused(f"{host} does not resolve.") from exc
    if not addresses or not all(download.is_public(a) for a in addresses):
        raise TargetRefused(
            f"{host} resolves to a private, loopback or link-local address."
        )


def subscription_create(
    *,
    workspace: Workspace,
    url: str,
    events: list[str],
    description: str = "",
    created_by: Any = None,
) -> WebhookSubscription:
    url = url.strip()
    if len(url) > 500:
        raise TargetRefused("Keep the URL under 500 characters.")
    check_target(url)
    unknown = [e for e in events if e not in WebhookEvent.values]
    if unknown or not events:
        raise ValueError(
            f"Choose events among {', '.join(WebhookEvent.values)}"
            + (f" (not {', '.join(unknown)})." if unknown else ".")
        )
    return WebhookSubscription.objects.create(
        workspace=workspace,
        url=url,
        events=sorted(set(events)),
        secret=new_secret(),
        description=description.strip()[:200],
        created_by=created_by,
    )


def event_emit(
    *, workspace_id: int, event: str, data: Mapping[str, Any], message_key: str
) -> int:
    """Record one delivery per listening subscription and send them after commit.

    `message_key` identifies the occurrence (e.g. the generation's code): emitting the same
    occurrence twice (two workers racing to finish a batch) records it once.
    """
    subscriptions = [
        s
        for s in WebhookSubscription.objects.filter(
            workspace_id=workspace_id, enabled=True
        )
        if event in s.events
    ]
    if not subscriptions:
        return 0
    # Through Django's encoder once: datetimes, decimals and UUIDs as the API renders them.
    payload = json.loads(
        json.dumps(
            {"type": event, "timestamp": timezone.now(), "data": dict(data)},
            cls=DjangoJSONEncoder,
        )
    )
    message_id = "msg_" + _digest(f"{event}:{message_key}")
    rows = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription=s, message_id=message_id, event=event, payload=payload
            )
            for s in subscriptions
        ],
        ignore_conflicts=True,
    )
    ids = list(
        WebhookDelivery.objects.filter(
            subscription__in=subscriptions,
            message_id=message_id,
            attempts=0,
            state=DeliveryState.PENDING,
        ).values_list("pk", flat=True)
    )
    from api import tasks

    for pk in ids:
        transaction.on_commit(partial(tasks.webhook_deliver.delay, pk))
    return len(rows)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sign(
    *, secret: str, message_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "flux-studio-webhooks/1",
    }


def retry_schedule() -> list[int]:
    return [int(s) for s in settings.API_WEBHOOK_RETRY_SCHEDULE]


def delivery_attempt(*, delivery_id: int) -> int | None:
    """POST one delivery. Answers the seconds until the next attempt, or None when done.

    A claim (conditional UPDATE on the attempt count) makes a duplicate task delivery a no-op.
    """
    delivery = (
        WebhookDelivery.objects.select_related("subscription")
        .filter(pk=delivery_id, state=DeliveryState.PENDING)
        .first()
    )
    if delivery is None:
        return None
    now = timezone.now()
    if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(
        seconds=1
    ):
        return None  # an early duplicate of a scheduled retry
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, state=DeliveryState.PENDING
    ).update(attempts=delivery.attempts + 1, next_attempt_at=None)
    if claimed != 1:
        return None
    attempt = delivery.attempts + 1
    subscription = delivery.subscription
    status, error = _post(subscription, delivery, now)
    fields: dict[str, Any] = {"last_status": status, "last_error": error[:500]}
    if status is not None and 200 <= status < 300:
        fields.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now())
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        return None
    schedule = retry_schedule()
    if attempt > len(schedule) or not subscription.enabled:
        fields.update(state=DeliveryState.FAILED)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        return None
    delay = schedule[attempt - 1]
    fields["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return delay


def _post(
    subscription: WebhookSubscription, delivery: WebhookDelivery, now: datetime
) -> tuple[int | None, str]:
    try:
        check_target(subscription.url)
    except TargetRefused as exc:
        return None, f"Refused: {exc}"
    body = json.dumps(delivery.payload, separators=(",", ":"), default=str)
    headers = sign(
        secret=subscription.secret,
        message_id=delivery.message_id,
        timestamp=now,
        body=body,
    )
    try:
        response = httpx.post(
            subscription.url,
            content=body.encode(),
            headers=headers,
            timeout=settings.API_WEBHOOK_TIMEOUT,
            follow_redirects=False,  # a redirect could lead past the address rule
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:MAX_RESPONSE_NOTE]
    note = "" if response.is_success else response.text[:MAX_RESPONSE_NOTE]
    return response.status_code, note


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a logged delivery again (same message id and payload), as a fresh series of attempts."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=None,
        delivered_at=None,
    )
    from api import tasks

    transaction.on_commit(lambda: tasks.webhook_deliver.delay(delivery.pk))
    delivery.refresh_from_db()
    return delivery
