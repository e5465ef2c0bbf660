"""The whole loop through the API alone, against a live server (gunicorn + uvicorn worker, as in
production) and a real Celery worker: reference upload, template version, a generation with
`Prefer: wait`, a batch followed to done, approval, an asset pack built and downloaded, and the
signed webhooks of all of it verified by a local receiver. Only the workspace, its brand, campaign
and first template and the token are made directly (an admin does that in the pages).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import webhooks_out
from generation.models import Generation
from studio.models import Role
from tests.api.helpers import make_token
from tests.api.live_stack import (
    Process,
    clear_broker,
    stack_env,
    start_web,
    start_worker,
)
from tests.api.test_api_live import Receiver
from tests.factories import image_bytes, make_brand, make_campaign, make_workspace
from tests.generation.batch_helpers import make_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clear_broker()
    env = stack_env()
    web, base = start_web(env, tmp_path)
    started: list[Process] = [web]

    def worker() -> Process:
        started.append(start_worker(env, tmp_path))
        return started[-1]

    try:
        yield {"base": base, "env": env, "web": web, "worker": worker}
    finally:
        for process in reversed(started):
            process.stop()


def test_the_full_loop_through_the_api(live: dict[str, Any]) -> None:
    from django.test import override_settings

    workspace = make_workspace("Loop")
    brand = make_brand(workspace, name="Loop brand")
    campaign = make_campaign(brand)
    template = make_version(brand, campaign=campaign).template
    receiver = Receiver()
    with override_settings(API_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        subscription = webhooks_out.subscription_create(
            workspace=workspace, url=receiver.url, events=[
                "generation.succeeded", "batch.finished", "asset.approved", "export.ready"],
        )  # fmt: skip
    receiver.secret = subscription.secret
    api = httpx.Client(
        base_url=live["base"] + "/api/v1",
        headers={"Authorization": f"Bearer {make_token(workspace, Role.APPROVER)}"},
        timeout=70,
    )
    worker = live["worker"]()
    try:
        # The catalog as the token sees it.
        brands = api.get("/brands").json()["items"]
        assert [b["id"] for b in brands] == [str(brand.code)]
        assert api.get("/campaigns").json()["items"][0]["id"] == str(campaign.code)

        # A reference image, uploaded with the library's checks.
        upload = api.post(
            "/references",
            data={"brand": str(brand.code), "role": "product", "title": "Bag"},
            files={"file": ("bag.png", image_bytes(color=(120, 60, 30)), "image/png")},
        )
        assert upload.status_code == 201, upload.text
        reference = upload.json()["id"]

        # A new template version with a reference slot.
        created = api.post(
            f"/templates/{template.code}/versions",
            json={"body": 'Poster "{headline}" with the bag {scene}', "based_on": 1,
                  "reference_slots": [{"name": "product", "role": "product"}]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        version = created.json()["id"]

        # One generation, waited for; the same Idempotency-Key replays it and creates nothing.
        body = {"template_version": version, "variables": {"headline": "Hi", "scene": "on oak"},
                "reference_slots": {"product": reference}, "backend": "preview",
                "model": "flux-2-pro", "width": 512, "height": 512, "seed": 3,
                "campaign": str(campaign.code)}  # fmt: skip
        key = {"Idempotency-Key": "loop-1"}
        started = time.monotonic()
        first = api.post(
            "/generations", json=body, headers={**key, "Prefer": "wait=50"}
        )
        waited = time.monotonic() - started
        assert first.status_code == 201, first.text
        generation = first.json()
        assert generation["state"] == "succeeded", (generation, worker.log_tail())
        assert first.headers["Preference-Applied"] == "wait=50"
        assert waited < 45, waited
        again = api.post("/generations", json=body, headers=key)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == generation["id"]
        assert Generation.objects.filter(workspace=workspace).count() == 1
        image = httpx.get(generation["asset"]["download_url"], timeout=10)  # no token
        assert image.status_code == 200 and image.content[:4] in (b"\x89PNG", b"RIFF")

        # A batch from the version's matrix, followed to done.
        batch = api.post(
            "/batches",
            json={"campaign": str(campaign.code), "template_version": version,
                  "matrix": {"headline": ["A", "B"], "scene": ["here", "there"]},
                  "references": {"product": reference},
                  "targets": ["preview:flux-2-pro"], "sizes": [{"width": 512, "height": 512}],
                  "seeds": {"values": [1]}},
        )  # fmt: skip
        assert batch.status_code == 201, batch.text
        batch_id = batch.json()["id"]
        deadline = time.monotonic() + 60
        while (state := api.get(f"/batches/{batch_id}").json())["state"] != "finished":
            assert time.monotonic() < deadline, (state, worker.log_tail())
            time.sleep(0.5)
        assert state["progress"]["total"] == 4

        # Approve every image of the batch, walking the cursor pages.
        assets, cursor = [], None
        while True:
            page = api.get("/assets", params={"batch": batch_id, "limit": 3,
                                              **({"cursor": cursor} if cursor else {})}).json()  # fmt: skip
            assets += page["items"]
            if not (cursor := page["next_cursor"]):
                break
        assert len(assets) == 4
        for asset in assets:
            approved = api.post(
                f"/assets/{asset['id']}/approve", json={"comment": "ok"}
            )
            assert approved.status_code == 200, approved.text

        # An asset pack of the batch, built by the worker and downloaded.
        pack = api.post("/exports", json={"batch": batch_id, "presets": ["square"],
                                          "formats": ["jpeg"]})  # fmt: skip
        assert pack.status_code == 201, pack.text
        pack_id = pack.json()["id"]
        deadline = time.monotonic() + 60
        while not (state := api.get(f"/exports/{pack_id}").json())["terminal"]:
            assert time.monotonic() < deadline, (state, worker.log_tail())
            time.sleep(0.5)
        assert state["state"] == "succeeded", state
        archive = httpx.get(state["download_url"], timeout=10)  # no token
        assert archive.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
        assert len([n for n in names if n.endswith(".jpg")]) == 4, names

        # Every event reached the receiver, signed with the subscription's secret.
        wanted = {"generation.succeeded": 5, "batch.finished": 1, "asset.approved": 4,
                  "export.ready": 1}  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            counts: dict[str, int] = {}
            for message in {r["id"]: r for r in receiver.received}.values():
                kind = message["payload"]["type"]
                counts[kind] = counts.get(kind, 0) + 1
            if counts == wanted or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert counts == wanted, (counts, worker.log_tail())
        assert receiver.rejected == []
        batch_event = next(
            r for r in receiver.received if r["payload"]["type"] == "batch.finished"
        )
        assert batch_event["payload"]["data"]["id"] == batch_id
    finally:
        receiver.close()
        api.close()
