"""Committed rows (transaction=True): `Prefer: wait` woken by a generation finishing in another
thread through Redis pub/sub, and webhooks delivered to a local receiver that verifies the
Standard Webhooks signature with the `standardwebhooks` package, as a customer's receiver would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api import webhooks_out
from api.models import DeliveryState, WebhookDelivery
from generation.backends.base import BackendError, ErrorClass
from generation.engine.failure import generation_fail
from generation.models import Generation
from generation.review import asset_review
from studio.models import Role
from tests.api.helpers import ApiClient, make_token
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A local webhook endpoint: verifies each request with the subscription's secret."""

    def __init__(self, status: int = 200) -> None:
        self.secret = ""
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    payload = Webhook(outer.secret).verify(body, dict(self.headers))
                    outer.received.append(
                        {"payload": payload, "id": self.headers["webhook-id"]}
                    )
                except WebhookVerificationError as exc:
                    outer.rejected.append(str(exc))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with override_settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield r
    r.close()


@pytest.fixture
def cast() -> dict[str, Any]:
    workspace = make_workspace("Live")
    admin = make_member(workspace, Role.ADMIN, "live-admin")
    brand = make_brand(workspace, name="Live brand")
    return {"workspace": workspace, "admin": admin, "campaign": make_campaign(brand)}


def test_prefer_wait_answers_when_the_generation_finishes(cast: dict[str, Any]) -> None:
    client = ApiClient(make_token(cast["workspace"], Role.EDITOR))
    body = {"prompt": "A mug", "backend": "preview", "model": "flux-2-pro"}
    with mock.patch("generation.tasks.wake_dispatcher"):
        created = client.post("/generations", body).json()
    generation = Generation.objects.get(code=created["id"])

    def finish_later() -> None:
        time.sleep(1.0)
        generation_fail(
            generation_id=generation.pk,
            error=BackendError(ErrorClass.PROVIDER_ERROR, "provider down"),
        )

    threading.Thread(target=finish_later).start()
    started = time.monotonic()
    with override_settings(API_WAIT_RECHECK=30):  # only pub/sub can wake it this early
        response = client.get(
            f"/generations/{created['id']}", headers={"Prefer": "wait=20"}
        )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["state"] == "failed"
    assert response["Preference-Applied"] == "wait=20"
    assert 0.9 < elapsed < 5, elapsed


def test_prefer_wait_gives_up_after_n_seconds(cast: dict[str, Any]) -> None:
    client = ApiClient(make_token(cast["workspace"], Role.EDITOR))
    body = {"prompt": "A mug", "backend": "preview", "model": "flux-2-pro"}
    started = time.monotonic()
    with mock.patch("generation.tasks.wake_dispatcher"):
        response = client.post("/generations", body, headers={"Prefer": "wait=1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert response.json()["state"] == "queued"
    assert 0.9 < elapsed < 4, elapsed


def test_signed_webhooks_reach_a_verifying_receiver(
    cast: dict[str, Any], receiver: Receiver
) -> None:
    sub = webhooks_out.subscription_create(
        workspace=cast["workspace"], url=receiver.url,
        events=["generation.failed", "asset.approved"],
    )  # fmt: skip
    receiver.secret = sub.secret
    with (
        mock.patch("api.tasks.webhook_deliver.delay") as delay,
        mock.patch("generation.tasks.wake_dispatcher"),
    ):
        created = (
            ApiClient(make_token(cast["workspace"], Role.EDITOR))
            .post(
                "/generations",
                {"prompt": "A mug", "backend": "preview", "model": "flux-2-pro"},
            )
            .json()
        )
        generation = Generation.objects.get(code=created["id"])
        generation_fail(
            generation_id=generation.pk,
            error=BackendError(ErrorClass.PROVIDER_ERROR, "provider down"),
        )
        asset = make_asset(cast["campaign"])
        asset_review(
            asset=asset, actor=cast["admin"], to_status="approved", comment="ok"
        )
    assert delay.call_count == 2
    for call in delay.call_args_list:
        from api import tasks

        tasks.webhook_deliver(*call.args)  # the task body, in-process
    assert receiver.rejected == []
    events = {r["payload"]["type"]: r["payload"] for r in receiver.received}
    assert set(events) == {"generation.failed", "asset.approved"}
    assert events["generation.failed"]["data"]["id"] == created["id"]
    # The classified message (docs/security.md): the provider's own text stays on the operator page.
    assert events["generation.failed"]["data"]["error"]["message"] == "Provider error."
    assert events["asset.approved"]["data"]["id"] == str(asset.code)
    assert events["asset.approved"]["data"]["comment"] == "ok"
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {
        DeliveryState.DELIVERED
    }
    # A receiver with another secret refuses the same message.
    delivery = WebhookDelivery.objects.filter(event="asset.approved").get()
    receiver.secret = webhooks_out.new_secret()
    with mock.patch("api.tasks.webhook_deliver.delay") as delay:
        webhooks_out.delivery_redeliver(delivery=delivery)
    from api import tasks

    with mock.patch("api.tasks.webhook_deliver.apply_async"):
        tasks.webhook_deliver(delivery.pk)
    assert len(receiver.rejected) == 1


def test_failed_deliveries_are_retried_on_the_schedule_then_given_up(
    cast: dict[str, Any], receiver: Receiver
) -> None:
    receiver.status = 503
    sub = webhooks_out.subscription_create(
        workspace=cast["workspace"], url=receiver.url, events=["generation.failed"]
    )
    receiver.secret = sub.secret
    with mock.patch("api.tasks.webhook_deliver.delay"):
        webhooks_out.event_emit(
            workspace_id=cast["workspace"].pk, event="generation.failed",
            data={"id": "x"}, message_key="x",
        )  # fmt: skip
    delivery = WebhookDelivery.objects.get()
    with override_settings(API_WEBHOOK_RETRY_SCHEDULE=[5, 300]):
        assert webhooks_out.delivery_attempt(delivery_id=delivery.pk) == 5
        assert (
            webhooks_out.delivery_attempt(delivery_id=delivery.pk) is None
        )  # not due yet
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
        assert webhooks_out.delivery_attempt(delivery_id=delivery.pk) == 300
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
        assert webhooks_out.delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (
        "failed",
        3,
        503,
    )
    assert (
        len({r["id"] for r in receiver.received}) == 1
    )  # one message id on every attempt
    assert len(receiver.received) == 3
    # Emitting the same occurrence again records nothing new.
    with mock.patch("api.tasks.webhook_deliver.delay"):
        webhooks_out.event_emit(
            workspace_id=cast["workspace"].pk, event="generation.failed",
            data={"id": "x"}, message_key="x",
        )  # fmt: skip
    assert WebhookDelivery.objects.count() == 1
    assert json.loads(json.dumps(delivery.payload))["type"] == "generation.failed"
