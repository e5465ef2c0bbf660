"""Provider webhooks in: a signed callback from each fake (BFL, fal, Replicate) completes a
generation without a single poll; a bad signature is refused and changes nothing; a duplicate
is ignored. The fakes POST over real HTTP to a live test server (STUDIO_PUBLIC_URL).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, ClassVar
from unittest import mock

from django.test import LiveServerTestCase, TestCase, override_settings
from django.urls import reverse

from generation import accounts, caps, webhooks
from generation.engine.create import generation_create
from generation.engine.dispatch import generation_dispatch_one
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.state import _request_for
from generation.engine.submit import generation_submit
from generation.models import Generation, GenerationState
from studio.models import Role
from tests.factories import make_member, make_workspace
from tests.fakes.bfl_server import FakeBFL, sign
from tests.fakes.fal_server import FakeFal
from tests.fakes.replicate_server import FakeReplicate

S = GenerationState


class WebhookFlowMixin:
    """One fake per class; a live server receives its callbacks. Celery messages are captured."""

    backend_name: ClassVar[str]
    model: ClassVar[str] = "flux-2-pro"
    fake: Any

    @classmethod
    def make_fake(cls) -> Any:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        cls.fake = cls.make_fake().start()
        cls.fake.webhook_retry_delays = ()  # a refused callback is not delivered again

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()  # type: ignore[misc]

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.fake.reset()
        self.workspace = make_workspace(f"Hooks {uuid.uuid4().hex[:6]}")
        self.user = make_member(
            self.workspace, Role.EDITOR, f"u-{uuid.uuid4().hex[:6]}"
        )
        self.prefix = f"test-hooks-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            STUDIO_PUBLIC_URL=self.live_server_url,  # type: ignore[attr-defined]
            ENGINE_REDIS_PREFIX=self.prefix,
            **self.settings_for_fake(),
        )
        overrides.enable()
        self.addCleanup(overrides.disable)  # type: ignore[attr-defined]
        self.ingests: list[tuple[Any, ...]] = []
        patchers = [
            mock.patch(
                "generation.tasks.generation_ingest.apply_async",
                side_effect=lambda args, **kw: self.ingests.append(args),
            ),
            mock.patch("generation.tasks.wake_dispatcher"),
        ]
        for patcher in patchers:
            patcher.start()
            self.addCleanup(patcher.stop)  # type: ignore[attr-defined]
        self.addCleanup(self._clear_redis)  # type: ignore[attr-defined]

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)

    def settings_for_fake(self) -> dict[str, Any]:
        return dict(self.fake.env())

    def poll_count_at_the_fake(self) -> int:
        return int(self.fake.counts["polls"])

    def submit(self) -> tuple[Generation, Any]:
        generation = generation_create(
            workspace=self.workspace,
            backend=self.backend_name,
            model=self.model,
            prompt="a red mug on a table",
            width=512,
            height=512,
            seed=3,
            created_by=self.user,
            dispatch=False,
        )
        self.assertTrue(generation_dispatch_one(generation_id=generation.pk))  # type: ignore[attr-defined]
        nxt = generation_submit(generation_id=generation.pk)
        return Generation.objects.get(pk=generation.pk), nxt

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting")

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self.fake.webhook_log)

    # The three behaviours, the same for every provider.

    def test_a_signed_callback_completes_the_generation_without_any_poll(self) -> None:
        generation, nxt = self.submit()
        self.assertEqual(generation.state, S.SUBMITTED)
        # A callback is expected: the first poll is pushed back (webhooks.first_poll_delay).
        self.assertEqual(nxt.action, "poll")
        self.assertGreaterEqual(nxt.countdown, 5.0)
        self.wait_for(
            lambda: Generation.objects.get(pk=generation.pk).state == S.INGESTING
        )
        self.assertEqual(self.ingests, [(generation.pk,)])
        self.assertEqual(generation_ingest(generation_id=generation.pk).action, "none")
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual(row.state, S.SUCCEEDED, row.error_message)
        self.assertTrue(row.asset.file.name)
        self.assertEqual(row.poll_count, 0)  # the engine never polled
        self.assertEqual(self.poll_count_at_the_fake(), 0)  # nor asked the provider
        self.assertEqual([d.get("http_status") for d in self.deliveries()], [200])
        self.assertEqual(caps.cap_for(row.cap_key).count(), 0)  # its slot was freed

    def test_a_bad_signature_is_refused_and_changes_nothing(self) -> None:
        self.fake.inject("bad_signature", endpoint="webhook")
        generation, nxt = self.submit()
        self.wait_for(lambda: bool(self.deliveries()))
        self.assertEqual(self.deliveries()[0]["http_status"], 401)
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual(row.state, S.SUBMITTED)
        self.assertEqual(self.ingests, [])
        # Polling is the fallback: the scheduled poll finds the result.
        nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        self.assertEqual(nxt.action, "ingest")
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.INGESTING)

    def test_a_duplicate_callback_is_ignored(self) -> None:
        self.fake.inject("duplicate", endpoint="webhook")
        generation, _nxt = self.submit()
        self.wait_for(lambda: len(self.deliveries()) == 2)
        self.assertEqual([d["http_status"] for d in self.deliveries()], [200, 200])
        self.assertEqual(self.ingests, [(generation.pk,)])  # one ingest, not two
        generation_ingest(generation_id=generation.pk)
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.SUCCEEDED)


class BFLWebhookTests(WebhookFlowMixin, LiveServerTestCase):
    backend_name = "bfl"

    @classmethod
    def make_fake(cls) -> Any:
        return FakeBFL(latency=0.3)

    def settings_for_fake(self) -> dict[str, Any]:
        return {
            "BFL_API_KEY": self.fake.api_key,
            "BFL_API_URL": self.fake.base_url,
            "BFL_ALLOWED_HOSTS": self.fake.allowed_hosts,
        }

    def test_the_submission_carries_a_per_generation_url_and_secret(self) -> None:
        generation, _nxt = self.submit()
        body = self.fake.bodies[0]
        self.assertEqual(body["webhook_url"], webhooks.url_for(generation))
        self.assertTrue(body["webhook_url"].startswith(self.live_server_url))
        self.assertIn(webhooks.token_for(generation.code), body["webhook_url"])
        self.assertEqual(
            body["webhook_secret"], webhooks.bfl_secret_for(generation.code)
        )
        other = uuid.uuid4()
        self.assertNotEqual(
            webhooks.token_for(other), webhooks.token_for(generation.code)
        )
        self.assertNotEqual(
            webhooks.bfl_secret_for(other), webhooks.bfl_secret_for(generation.code)
        )

    def test_an_unsigned_callback_is_refused(self) -> None:
        self.fake.inject("unsigned", endpoint="webhook")
        generation, _nxt = self.submit()
        self.wait_for(lambda: bool(self.deliveries()))
        self.assertEqual(self.deliveries()[0]["http_status"], 401)
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.SUBMITTED)


class FalWebhookTests(WebhookFlowMixin, LiveServerTestCase):
    backend_name = "fal"

    @classmethod
    def make_fake(cls) -> Any:
        return FakeFal(latency=0.3)

    def poll_count_at_the_fake(self) -> int:
        counts = self.fake.counts
        return int(counts["status_polls"] + counts["result_requests"])

    def test_the_submission_asks_for_the_callback_in_the_query(self) -> None:
        generation, _nxt = self.submit()
        task = self.fake.task(generation.provider_task_id)
        self.assertEqual(task.webhook_url, webhooks.url_for(generation))


class ReplicateWebhookTests(WebhookFlowMixin, LiveServerTestCase):
    backend_name = "replicate"

    @classmethod
    def make_fake(cls) -> Any:
        return FakeReplicate(latency=0.3)

    def test_the_submission_asks_for_completed_events_only(self) -> None:
        generation, _nxt = self.submit()
        task = self.fake.task(generation.provider_task_id)
        self.assertEqual(task.webhook_url, webhooks.url_for(generation))
        self.assertEqual(task.extra["webhook_events_filter"], ["completed"])


@override_settings(STUDIO_PUBLIC_URL="https://studio.example")
class ReceiverTests(TestCase):
    """The receiver's answers, through the test client (no provider involved)."""

    secret = "s3cret"

    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = make_workspace("Receiver")

    def setUp(self) -> None:
        super().setUp()
        patcher = mock.patch("generation.tasks.generation_ingest.apply_async")
        self.ingest = patcher.start()
        self.addCleanup(patcher.stop)
        settings = override_settings(BFL_API_KEY="bfl-key")
        settings.enable()
        self.addCleanup(settings.disable)

    def make(self, **fields: Any) -> Generation:
        values: dict[str, Any] = {
            "workspace": self.workspace,
            "backend": "bfl",
            "model": "flux-2-pro",
            "prompt": "x",
            "width": 512,
            "height": 512,
            "state": S.RUNNING,
            "provider_task_id": "task-1",
        }
        values.update(fields)
        return Generation.objects.create(**values)

    def post(
        self, generation: Generation, payload: dict[str, Any], *, token: str | None = None,
        backend: str = "bfl", signed: bool = True,
    ) -> Any:  # fmt: skip
        body = json.dumps(payload).encode()
        headers = {}
        if signed:
            headers["X-BFL-Signature"] = sign(
                body, webhooks.bfl_secret_for(generation.code)
            )
        url = reverse(
            "generation:webhook",
            kwargs={
                "backend": backend,
                "code": generation.code,
                "token": token or webhooks.token_for(generation.code),
            },
        )
        return self.client.post(
            url, data=body, content_type="application/json", headers=headers
        )

    def ready(self, task_id: str = "task-1") -> dict[str, Any]:
        return {
            "id": task_id,
            "status": "Ready",
            "result": {"sample": "https://delivery.bfl.ai/r.jpg", "seed": 1},
        }

    def test_a_valid_callback_moves_the_row_to_ingesting_and_enqueues_the_ingest(
        self,
    ) -> None:
        generation = self.make()
        response = self.post(generation, self.ready())
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"detail": "applied"})
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual(
            (row.state, row.result_url, row.poll_count),
            (S.INGESTING, "https://delivery.bfl.ai/r.jpg", 0),
        )
        self.ingest.assert_called_once_with((generation.pk,), countdown=0.0)
        # Again: nothing more happens.
        self.assertEqual(
            self.post(generation, self.ready()).json(), {"detail": "ignored"}
        )
        self.ingest.assert_called_once()

    def test_a_wrong_token_is_403_before_anything_is_read(self) -> None:
        generation = self.make()
        with self.assertNumQueries(0):
            response = self.post(generation, self.ready(), token="0" * 40)
        self.assertEqual(response.status_code, 403)
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.RUNNING)

    def test_a_wrong_signature_is_401_and_changes_nothing(self) -> None:
        generation = self.make()
        body = json.dumps(self.ready()).encode()
        url = webhooks.url_for(generation).removeprefix("https://studio.example")
        response = self.client.post(
            url,
            data=body,
            content_type="application/json",
            headers={"X-BFL-Signature": sign(body, "not-the-secret")},
        )
        self.assertEqual(response.status_code, 401)
        self.assertEqual(
            self.post(generation, self.ready(), signed=False).status_code, 401
        )
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.RUNNING)
        self.ingest.assert_not_called()

    def test_unknown_generations_and_backends_are_404_and_get_is_405(self) -> None:
        generation = self.make()
        self.assertEqual(
            self.post(generation, self.ready(), backend="cloudflare").status_code, 404
        )
        ghost = Generation(code=uuid.uuid4())
        self.assertEqual(self.post(ghost, self.ready()).status_code, 404)
        self.assertEqual(self.client.get(webhooks.url_for(generation)).status_code, 405)

    def test_a_callback_for_an_older_task_is_ignored(self) -> None:
        generation = self.make(provider_task_id="task-2")  # resubmitted since
        response = self.post(generation, self.ready("task-1"))
        self.assertEqual(response.status_code, 200)
        self.assertIn("not the generation's current task", response.json()["detail"])
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.RUNNING)

    def test_a_callback_faster_than_our_own_update_asks_to_be_sent_again(self) -> None:
        generation = self.make(state=S.QUEUED, provider_task_id="")
        response = self.post(generation, self.ready())
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Retry-After"], "1")

    def test_a_callback_for_a_generation_that_moved_to_another_backend_is_ignored(
        self,
    ) -> None:
        generation = self.make(backend="fal")
        response = self.post(generation, self.ready())
        self.assertEqual(response.status_code, 200)
        self.assertEqual(Generation.objects.get(pk=generation.pk).state, S.RUNNING)

    def test_a_failure_callback_takes_the_same_path_as_a_failed_poll(self) -> None:
        generation = self.make()
        payload = {
            "id": "task-1",
            "status": "Request Moderated",
            "details": {"Moderation Reasons": ["Violence"]},
        }
        self.assertEqual(self.post(generation, payload).status_code, 200)
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual(
            (row.state, row.moderation_reasons), (S.MODERATED, ["Violence"])
        )

    def test_without_a_public_url_no_callback_is_asked_for(self) -> None:
        generation = self.make()
        backend = accounts.build("bfl", accounts.settings_config("bfl"))
        request = _request_for(generation)
        self.assertEqual(
            webhooks.attach(generation, backend, request).webhook_url,
            "https://studio.example"
            + reverse(
                "generation:webhook",
                kwargs={
                    "backend": "bfl",
                    "code": generation.code,
                    "token": webhooks.token_for(generation.code),
                },
            ),
        )
        with override_settings(STUDIO_PUBLIC_URL=""):
            self.assertIsNone(webhooks.attach(generation, backend, request).webhook_url)
        generation.backend = "cloudflare"  # calls no one back
        self.assertIsNone(
            webhooks.attach(
                generation,
                accounts.build("cloudflare", accounts.settings_config("cloudflare")),
                request,
            ).webhook_url
        )

    def test_the_first_poll_waits_longer_when_a_callback_is_expected(self) -> None:
        generation = self.make()
        with override_settings(ENGINE_WEBHOOK_POLL_DELAY=30.0):
            self.assertEqual(webhooks.first_poll_delay(generation, 0.5), 30.0)
            with mock.patch(
                "generation.engine.policy.duration_estimate", return_value=4.0
            ):
                self.assertEqual(webhooks.first_poll_delay(generation, 0.5), 13.0)
            with mock.patch(
                "generation.engine.policy.duration_estimate", return_value=60.0
            ):
                self.assertEqual(webhooks.first_poll_delay(generation, 0.5), 30.0)
