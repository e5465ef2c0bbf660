"""The generation state machine: conditional transitions, duplicates, timestamps, one asset per run.

The helpers at the top (ScriptedBackend, EngineTestCase) are shared with test_engine_tasks.py.
"""

from __future__ import annotations

import io
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar
from unittest import mock

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import TestCase, override_settings
from django.utils import timezone
from PIL import Image

from generation import accounts, caps, crypto
from generation.backends import registry
from generation.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    ModelSpec,
    PollResult,
    ProviderState,
    RuleViolation,
    Submission,
)
from generation.engine.create import generation_create, reference_file_store
from generation.engine.dispatch import generation_dispatch
from generation.engine.failure import generation_cancel, generation_expire
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.state import _limit, _transition
from generation.engine.submit import generation_submit
from generation.models import Asset, Generation, GenerationState, ProviderAccount
from studio.models import Role
from tests.factories import make_brand, make_member, make_workspace

S = GenerationState


def png(
    size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


class ScriptedBackend(Backend):
    """A test-only asynchronous backend: answers come from per-test scripts, calls are counted."""

    name = "scripted"
    label = "Scripted"
    submits: ClassVar[list[Any]] = []
    polls: ClassVar[list[Any]] = []
    fetches: ClassVar[list[Any]] = []
    calls: ClassVar[Counter[str]] = Counter()
    requests: ClassVar[list[GenerationRequest]] = []

    @classmethod
    def reset(cls) -> None:
        cls.submits, cls.polls, cls.fetches = [], [], []
        cls.calls = Counter()
        cls.requests = []

    def capabilities(self) -> Capabilities:
        spec = ModelSpec("m", "m", max_references=2, params=frozenset({"steps"}))
        return Capabilities(models={"m": spec})

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        return Decimal("0.03")

    @staticmethod
    def _next(script: list[Any], default: Any) -> Any:
        item = script.pop(0) if script else default
        if isinstance(item, BaseException):
            raise item
        return item

    def submit(self, request: GenerationRequest) -> Submission:
        self.calls["submit"] += 1
        self.requests.append(request)
        n = self.calls["submit"]
        return self._next(
            self.submits,
            Submission(
                task_id=f"task-{n}", poll_url=f"https://api.example/poll?id={n}"
            ),
        )

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self.calls["poll"] += 1
        return self._next(self.polls, ready())

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        self.calls["fetch"] += 1
        return self._next(self.fetches, (png(), "image/png"))

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        self.calls["cancel"] += 1
        return True


def ready(
    url: str = "https://delivery.example/r.png",
    cost: str | None = "0.045",
    seed: int = 42,
) -> PollResult:
    return PollResult(
        ProviderState.READY,
        result_url=url,
        cost=Decimal(cost) if cost else None,
        seed=seed,
        provider_prompt="up",
    )


def pending(progress: float | None = None) -> PollResult:
    return PollResult(ProviderState.PENDING, progress=progress)


def failed(error: BackendError) -> PollResult:
    return PollResult(ProviderState.FAILED, error=error)


class EngineTestCase(TestCase):
    """Each test gets its own Redis key prefix (caps, flags, duration estimates) and a clean script."""

    backend_name = "scripted"

    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = make_workspace("Acme")
        cls.alice = make_member(
            cls.workspace, Role.EDITOR, f"alice-{uuid.uuid4().hex[:6]}"
        )
        cls.bob = make_member(cls.workspace, Role.EDITOR, f"bob-{uuid.uuid4().hex[:6]}")
        cls.brand = make_brand(cls.workspace, name="Acme Coffee")

    def setUp(self) -> None:
        super().setUp()
        self.prefix = f"test-engine-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=self.prefix,
            ENGINE_RETRY_BASE=1.0,
            ENGINE_RETRY_CAP=60.0,
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        patches = [
            mock.patch.dict(registry.BACKENDS, {"scripted": ScriptedBackend}),
            # The dispatcher is woken on commit; unit tests drive the steps themselves.
            mock.patch("generation.tasks.wake_dispatcher"),
        ]
        for patcher in patches:
            patcher.start()
            self.addCleanup(patcher.stop)
        ScriptedBackend.reset()
        self.addCleanup(self._clear_redis)

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None:
            keys = list(client.scan_iter(f"{self.prefix}:*"))
            if keys:
                client.delete(*keys)

    def create(self, **overrides: Any) -> Generation:
        values: dict[str, Any] = {
            "workspace": self.workspace,
            "backend": self.backend_name,
            "model": "m",
            "prompt": "a red mug on a table",
            "width": 512,
            "height": 512,
            "seed": 7,
            "created_by": self.alice,
        }
        values.update(overrides)
        return generation_create(**values)

    def dispatch(self, generation: Generation) -> None:
        ids = generation_dispatch(cap_key=generation.cap_key).ids
        self.assertIn(generation.pk, ids)

    def reload(self, generation: Generation) -> Generation:
        return Generation.objects.get(pk=generation.pk)

    def lease_members(self, key: str) -> set[int]:
        cap = caps.cap_for(key)
        assert isinstance(cap, caps.RedisCap)
        return cap.members()

    def run_to_end(self, generation: Generation, *, max_steps: int = 50) -> Generation:
        """Follow Next answers in-process (no sleeps) until nothing is left to do."""
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        for _ in range(max_steps):
            if nxt.action == "submit":
                nxt = generation_submit(generation_id=generation.pk)
            elif nxt.action == "poll":
                nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
            elif nxt.action == "ingest":
                nxt = generation_ingest(generation_id=generation.pk)
            else:
                break
            # Countdowns are not slept here: make the next step due now.
            Generation.objects.filter(pk=generation.pk, due_at__isnull=False).update(
                due_at=timezone.now()
            )
        return self.reload(generation)


@contextmanager
def no_due_wait(generation: Generation) -> Iterator[None]:
    Generation.objects.filter(pk=generation.pk).update(due_at=timezone.now())
    yield


class CreateTests(EngineTestCase):
    def test_it_stores_a_queued_generation_with_estimate_and_fair_rank(self) -> None:
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            generation = self.create(params={"steps": 20}, brand=self.brand)
        self.assertEqual(generation.state, S.QUEUED)
        self.assertEqual(generation.estimated_cost, Decimal("0.03"))
        self.assertIsNotNone(generation.queued_at)
        self.assertIsNone(generation.dispatched_at)  # waiting in the fair queue
        self.assertEqual(generation.owner_key, f"user:{self.alice.pk}")
        self.assertEqual(generation.fair_rank, 1)
        self.assertEqual(generation.params, {"steps": 20})
        self.assertEqual(len(callbacks), 1)
        from generation import tasks

        tasks.wake_dispatcher.assert_called_once_with("scripted:env")  # type: ignore[attr-defined]

    def test_a_rule_violation_stores_nothing(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.create(width=500)
        self.assertEqual(caught.exception.rule, "dimension_step")
        with self.assertRaises(RuleViolation) as caught:
            self.create(params={"guidance": 3})
        self.assertEqual(caught.exception.rule, "params")
        with self.assertRaises(RuleViolation) as caught:
            self.create(
                references=[{"file": "generations/inputs/missing.png", "role": "style"}]
            )
        self.assertEqual(caught.exception.rule, "references")
        self.assertEqual(Generation.objects.count(), 0)

    def test_too_many_references_is_refused_with_the_rule(self) -> None:
        specs = [reference_file_store(content=png(colour=(i, 1, 1))) for i in range(3)]
        with self.assertRaises(RuleViolation) as caught:
            self.create(references=[{**spec, "role": "product"} for spec in specs])
        self.assertEqual(caught.exception.rule, "max_references")
        self.assertEqual(Generation.objects.count(), 0)

    @override_settings(BFL_API_KEY="", BFL_API_URL="")
    def test_a_backend_without_a_key_is_refused_before_storing(self) -> None:
        with self.assertRaises(BackendError) as caught:
            self.create(backend="bfl", model="flux-2-pro")
        self.assertEqual(caught.exception.error_class, ErrorClass.AUTH)
        self.assertEqual(Generation.objects.count(), 0)

    def test_references_are_sent_in_order_with_roles(self) -> None:
        first = reference_file_store(content=png(colour=(1, 2, 3)), name="a.png")
        second = reference_file_store(content=png(size=(32, 32)), name="b.png")
        generation = self.create(
            references=[{**first, "role": "product"}, {**second, "role": "style"}]
        )
        self.assertEqual(
            [r["role"] for r in generation.references], ["product", "style"]
        )
        self.run_to_end(generation)
        sent = ScriptedBackend.requests[0]
        self.assertEqual(
            [(r.role, r.width, r.height) for r in sent.references],
            [("product", 96, 64), ("style", 32, 32)],
        )


class TransitionTests(EngineTestCase):
    def test_a_transition_from_the_wrong_state_does_nothing(self) -> None:
        generation = self.create()
        self.assertFalse(
            _transition(generation.pk, source=[S.RUNNING], target=S.INGESTING)
        )
        self.assertEqual(self.reload(generation).state, S.QUEUED)
        self.assertTrue(
            _transition(generation.pk, source=[S.QUEUED], target=S.SUBMITTED)
        )
        self.assertFalse(
            _transition(generation.pk, source=[S.QUEUED], target=S.SUBMITTED)
        )

    def test_the_whole_life_is_timestamped_in_order(self) -> None:
        ScriptedBackend.polls = [pending(0.3), ready()]
        generation = self.create()
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        row = self.reload(generation)
        # The provider task id and polling URL are saved before anything waits.
        self.assertEqual((row.state, row.provider_task_id), (S.SUBMITTED, "task-1"))
        self.assertEqual(row.poll_url, "https://api.example/poll?id=1")
        self.assertEqual(nxt.action, "poll")
        self.assertEqual(row.attempts, 1)
        self.assertIsNotNone(row.due_at)

        nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        row = self.reload(generation)
        self.assertEqual((row.state, row.progress, row.poll_count), (S.RUNNING, 0.3, 1))
        self.assertEqual(nxt.action, "poll")

        nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        row = self.reload(generation)
        self.assertEqual(row.state, S.INGESTING)
        self.assertEqual(nxt.action, "ingest")
        self.assertEqual(
            nxt.wake, ("scripted:env",)
        )  # the slot is free: dispatch the next one
        self.assertEqual(row.actual_cost, Decimal("0.045"))
        self.assertEqual(row.provider_details["seed"], 42)

        nxt = generation_ingest(generation_id=generation.pk)
        row = self.reload(generation)
        self.assertEqual(row.state, S.SUCCEEDED)
        self.assertEqual(nxt.action, "none")
        self.assertEqual(row.result_url, "")  # the signed URL is not kept
        stamps = [
            row.queued_at,
            row.submitted_at,
            row.running_at,
            row.ingesting_at,
            row.finished_at,
        ]
        self.assertTrue(all(stamps), stamps)
        self.assertEqual(stamps, sorted(stamps))
        self.assertGreaterEqual(row.updated_at, row.finished_at)
        self.assertEqual(self.lease_members("scripted:env"), set())

        asset = Asset.objects.get(generation=row)
        self.assertEqual((asset.width, asset.height, asset.format), (96, 64, "png"))
        self.assertEqual(asset.workspace_id, self.workspace.pk)
        self.assertTrue(asset.file.name.endswith(f"{row.code}/image.png"))
        with asset.thumbnail.open("rb") as handle, Image.open(handle) as thumb:
            self.assertEqual(thumb.format, "WEBP")

    def test_a_duplicate_submit_delivery_does_nothing(self) -> None:
        generation = self.create()
        self.dispatch(generation)
        first = generation_submit(generation_id=generation.pk)
        second = generation_submit(generation_id=generation.pk)
        self.assertEqual(first.action, "poll")
        self.assertEqual(second.action, "none")
        self.assertEqual(ScriptedBackend.calls["submit"], 1)
        self.assertEqual(self.reload(generation).attempts, 1)

    def test_a_submitted_generation_is_polled_not_resubmitted(self) -> None:
        generation = self.create()
        self.dispatch(generation)
        generation_submit(generation_id=generation.pk)
        # Even made "due" again (a sweep, a redelivery), submit leaves a submitted row alone.
        Generation.objects.filter(pk=generation.pk).update(
            due_at=timezone.now() - timedelta(minutes=5)
        )
        self.assertEqual(generation_submit(generation_id=generation.pk).action, "none")
        self.assertEqual(ScriptedBackend.calls["submit"], 1)

    def test_a_submit_claimed_by_another_delivery_is_not_sent_twice(self) -> None:
        generation = self.create()
        self.dispatch(generation)
        # Another worker claimed it a moment ago (its HTTP call is in flight).
        Generation.objects.filter(pk=generation.pk).update(
            due_at=timezone.now() + timedelta(seconds=60)
        )
        self.assertEqual(generation_submit(generation_id=generation.pk).action, "none")
        self.assertEqual(ScriptedBackend.calls["submit"], 0)

    def test_duplicate_and_stale_polls_do_nothing(self) -> None:
        ScriptedBackend.polls = [pending(), pending()]
        generation = self.create()
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        after_first = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        duplicate = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        self.assertEqual(after_first.action, "poll")
        self.assertEqual(duplicate.action, "none")
        self.assertEqual(ScriptedBackend.calls["poll"], 1)
        self.assertEqual(self.reload(generation).poll_count, 1)

    def test_ingest_run_twice_gives_one_asset(self) -> None:
        generation = self.create()
        row = self.run_to_end(generation)
        self.assertEqual(row.state, S.SUCCEEDED)
        first_asset = Asset.objects.get(generation=row)
        # A redelivered ingest after success does nothing.
        self.assertEqual(generation_ingest(generation_id=row.pk).action, "none")
        # Forced to run again from scratch (as if the first run died after storing): one asset, same keys.
        Generation.objects.filter(pk=row.pk).update(
            state=S.INGESTING,
            due_at=timezone.now(),
            result_url="https://delivery.example/r.png",
        )
        generation_ingest(generation_id=row.pk)
        self.assertEqual(self.reload(row).state, S.SUCCEEDED)
        self.assertEqual(Asset.objects.filter(generation=row).count(), 1)
        asset = Asset.objects.get(generation=row)
        self.assertEqual(asset.pk, first_asset.pk)
        self.assertEqual(asset.file.name, first_asset.file.name)
        folder = os.path.dirname(asset.file.name)
        self.assertEqual(
            sorted(default_storage.listdir(folder)[1]), ["image.png", "thumb.webp"]
        )

    def test_an_unusable_result_is_retried_then_failed(self) -> None:
        with override_settings(ENGINE_MAX_RETRIES=1):
            ScriptedBackend.fetches = [
                (b"not an image", "image/png"),
                (b"still not", "image/png"),
            ]
            row = self.run_to_end(self.create())
        self.assertEqual(row.state, S.FAILED)
        self.assertEqual(row.error_class, ErrorClass.BAD_RESULT)
        self.assertEqual(row.retries, 1)
        self.assertFalse(Asset.objects.filter(generation=row).exists())

    def test_cancel_is_conditional_and_frees_the_slot(self) -> None:
        generation = self.create()
        self.dispatch(generation)
        generation_submit(generation_id=generation.pk)
        self.assertEqual(self.lease_members("scripted:env"), {generation.pk})
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(generation_cancel(generation_id=generation.pk))
        self.assertFalse(generation_cancel(generation_id=generation.pk))
        row = self.reload(generation)
        self.assertEqual(row.state, S.CANCELED)
        self.assertIsNotNone(row.finished_at)
        self.assertEqual(ScriptedBackend.calls["cancel"], 1)
        self.assertEqual(self.lease_members("scripted:env"), set())
        # A poll that was already scheduled finds it canceled and does nothing.
        self.assertEqual(generation_poll(generation_id=row.pk, seq=0).action, "none")

    def test_a_generation_canceled_during_submit_is_not_moved_to_submitted(
        self,
    ) -> None:
        generation = self.create()
        self.dispatch(generation)

        def cancel_then_answer(request: GenerationRequest) -> Submission:
            Generation.objects.filter(pk=generation.pk).update(state=S.CANCELED)
            return Submission(task_id="late")

        with mock.patch.object(
            ScriptedBackend, "submit", side_effect=cancel_then_answer, autospec=False
        ):
            nxt = generation_submit(generation_id=generation.pk)
        self.assertEqual(nxt.action, "none")
        self.assertEqual(self.reload(generation).state, S.CANCELED)
        self.assertEqual(self.lease_members("scripted:env"), set())

    def test_a_submit_that_lost_to_another_keeps_the_winners_slot(self) -> None:
        generation = self.create()
        self.dispatch(generation)

        def another_submit_wins(request: GenerationRequest) -> Submission:
            # A hung call outlived its claim; the sweep's re-drive submitted and recorded first.
            Generation.objects.filter(pk=generation.pk).update(
                state=S.SUBMITTED, provider_task_id="winner"
            )
            return Submission(task_id="loser")

        with (
            mock.patch.object(
                ScriptedBackend, "submit", side_effect=another_submit_wins
            ),
            self.assertLogs("generation.engine.submit", "WARNING"),
        ):
            nxt = generation_submit(generation_id=generation.pk)
        self.assertEqual(nxt.action, "none")
        self.assertEqual(self.reload(generation).provider_task_id, "winner")
        self.assertEqual(self.lease_members("scripted:env"), {generation.pk})

    def test_expire_is_terminal_and_conditional(self) -> None:
        generation = self.create()
        with self.captureOnCommitCallbacks(execute=True):
            self.assertTrue(
                generation_expire(generation_id=generation.pk, message="too slow")
            )
        self.assertFalse(
            generation_expire(generation_id=generation.pk, message="again")
        )
        row = self.reload(generation)
        self.assertEqual(
            (row.state, row.error_class, row.error_message),
            (S.EXPIRED, "timeout", "Timed out."),
        )
        self.assertEqual(row.provider_details["error_raw"], "too slow")


class SynchronousPathTests(EngineTestCase):
    backend_name = "preview"

    def test_a_preview_goes_from_submit_to_succeeded_in_one_step(self) -> None:
        generation = self.create(
            model="flux-2-pro", prompt='A "Hello" mug', brand=self.brand
        )
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        self.assertEqual(nxt.action, "none")
        self.assertEqual(nxt.wake, ("preview:env",))
        row = self.reload(generation)
        self.assertEqual(row.state, S.SUCCEEDED)
        self.assertTrue(row.provider_task_id.startswith("preview-"))
        self.assertIsNotNone(row.submitted_at)
        self.assertIsNotNone(row.ingesting_at)
        self.assertEqual(row.actual_cost, Decimal("0"))
        asset = row.asset
        self.assertEqual((asset.width, asset.height, asset.format), (512, 512, "png"))

    def test_a_preview_lost_before_ingesting_is_drawn_again(self) -> None:
        generation = self.create(model="flux-2-pro")
        self.dispatch(generation)
        # As if a worker died between "ingesting" and storing: no bytes kept anywhere.
        Generation.objects.filter(pk=generation.pk).update(
            state=S.INGESTING, due_at=timezone.now()
        )
        nxt = generation_ingest(generation_id=generation.pk)
        self.assertEqual(nxt.action, "submit")
        self.assertEqual(self.reload(generation).state, S.QUEUED)
        Generation.objects.filter(pk=generation.pk).update(due_at=timezone.now())
        generation_submit(generation_id=generation.pk)
        self.assertEqual(self.reload(generation).state, S.SUCCEEDED)


class ProviderAccountTests(EngineTestCase):
    def test_the_key_is_encrypted_at_rest_and_only_its_last_four_are_shown(
        self,
    ) -> None:
        account = ProviderAccount(workspace=self.workspace, backend="bfl", label="Main")
        account.set_api_key("bfl_secret_key_1234")
        account.save()
        raw = ProviderAccount.objects.values_list("api_key_encrypted", flat=True).get(
            pk=account.pk
        )
        self.assertNotIn("secret", raw)
        self.assertEqual(account.api_key_last4, "1234")
        self.assertEqual(
            ProviderAccount.objects.get(pk=account.pk).api_key, "bfl_secret_key_1234"
        )
        self.assertEqual(account.masked_key, "…1234")
        self.assertNotIn("secret", str(account))

    def test_keys_rotate_with_multifernet(self) -> None:
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
            account = ProviderAccount(workspace=self.workspace, backend="bfl")
            account.set_api_key("bfl_rotate_me_5678")
            account.save()
        with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
            account = ProviderAccount.objects.get(pk=account.pk)
            self.assertEqual(account.api_key, "bfl_rotate_me_5678")
            account.rotate_key()
            account.save()
        with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
            self.assertEqual(
                ProviderAccount.objects.get(pk=account.pk).api_key, "bfl_rotate_me_5678"
            )
        with (
            override_settings(FIELD_ENCRYPTION_KEYS=[old]),
            self.assertRaises(crypto.DecryptionError),
        ):
            _ = ProviderAccount.objects.get(pk=account.pk).api_key

    def test_without_configured_keys_one_is_derived_from_the_secret_key(self) -> None:
        with override_settings(FIELD_ENCRYPTION_KEYS=[]):
            token = crypto.encrypt("hello")
            self.assertEqual(crypto.decrypt(token), "hello")
            self.assertEqual(
                Fernet(crypto.derived_key(settings.SECRET_KEY)).decrypt(token.encode()),
                b"hello",
            )

    @override_settings(BFL_API_KEY="env-key-0000", BFL_API_URL="https://api.bfl.ai")
    def test_a_workspace_account_wins_over_the_environment(self) -> None:
        backend, account = accounts.backend_for(
            workspace_id=self.workspace.pk, backend="bfl"
        )
        self.assertIsNone(account)
        self.assertEqual(backend.config.api_key, "env-key-0000")
        mine = ProviderAccount(
            workspace=self.workspace,
            backend="bfl",
            base_url="",
            region="eu",
            max_concurrency=6,
        )
        mine.set_api_key("workspace-key-9999")
        mine.save()
        backend, account = accounts.backend_for(
            workspace_id=self.workspace.pk, backend="bfl"
        )
        self.assertEqual(account, mine)
        self.assertEqual(
            (backend.config.api_key, backend.config.base_url),
            ("workspace-key-9999", "eu"),
        )
        generation = self.create(backend="bfl", model="flux-2-pro")
        self.assertEqual(generation.provider_account, mine)
        self.assertEqual(generation.cap_key, f"bfl:{mine.pk}")
        self.assertEqual(_limit("bfl", mine.pk), 6)
        mine.enabled = False
        mine.save()
        _backend, account = accounts.backend_for(
            workspace_id=self.workspace.pk, backend="bfl"
        )
        self.assertIsNone(account)


class AdminTests(EngineTestCase):
    def test_the_admin_never_shows_the_key(self) -> None:
        from django.contrib.auth.models import User

        admin_user = User.objects.create_superuser(
            "root-admin", "root@example.com", "pw-for-tests-1"
        )
        self.client.force_login(admin_user)
        account = ProviderAccount(workspace=self.workspace, backend="bfl", label="Main")
        account.set_api_key("bfl_topsecret_abcd")
        account.save()
        for url in (
            "/admin/generation/provideraccount/",
            f"/admin/generation/provideraccount/{account.pk}/change/",
        ):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 200)
            self.assertNotContains(response, "topsecret")
            self.assertNotContains(response, account.api_key_encrypted)
            self.assertContains(response, "abcd")
        # Saving the form without a key keeps the stored one; a new key replaces it.
        change = f"/admin/generation/provideraccount/{account.pk}/change/"
        form = {"workspace": self.workspace.pk, "backend": "bfl", "label": "Main", "base_url": "", "region": "eu",
                "max_concurrency": "", "enabled": "on", "api_key": ""}  # fmt: skip
        self.assertEqual(self.client.post(change, form).status_code, 302)
        self.assertEqual(
            ProviderAccount.objects.get(pk=account.pk).api_key, "bfl_topsecret_abcd"
        )
        self.client.post(change, {**form, "api_key": "bfl_rotated_key_wxyz"})
        self.assertEqual(
            ProviderAccount.objects.get(pk=account.pk).api_key, "bfl_rotated_key_wxyz"
        )

    def test_generations_can_be_canceled_from_the_admin(self) -> None:
        from django.contrib.auth.models import User

        admin_user = User.objects.create_superuser(
            "root-admin2", "root2@example.com", "pw-for-tests-1"
        )
        self.client.force_login(admin_user)
        generation = self.create()
        self.assertEqual(
            self.client.get(
                f"/admin/generation/generation/{generation.pk}/change/"
            ).status_code,
            200,
        )
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(
                "/admin/generation/generation/",
                {"action": "cancel_generations", "_selected_action": [generation.pk]},
            )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(self.reload(generation).state, S.CANCELED)


class DatabaseCapTests(EngineTestCase):
    """Without Redis (the embedded development setup) the cap is counted in the database."""

    def test_the_dispatcher_respects_the_cap_without_redis(self) -> None:
        with override_settings(REDIS_URL="", ENGINE_CONCURRENCY={"scripted": 2}):
            self.assertIsInstance(caps.cap_for("scripted:env"), caps.DatabaseCap)
            generations = [self.create() for _ in range(3)]
            first = generation_dispatch(cap_key="scripted:env")
            self.assertEqual(first.ids, [g.pk for g in generations[:2]])
            self.assertEqual(generation_dispatch(cap_key="scripted:env").ids, [])
            generation_submit(generation_id=generations[0].pk)
            generation_poll(
                generation_id=generations[0].pk, seq=0
            )  # ready: no longer counted
            self.assertEqual(
                generation_dispatch(cap_key="scripted:env").ids,
                [generations[2].pk],
            )
