"""Routing: cheapest/fastest choices, fallback chains recorded on the generation, circuit breakers.

The fallback tests run the real BFL and fal clients against their fake servers (real HTTP on
127.0.0.1); the breaker tests inject time (breaker functions take `at`, the engine reads
`breaker.now()`), never sleep.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from django.core.management import call_command
from django.test import TestCase, override_settings
from django.utils import timezone

from generation import breaker, caps, routing
from generation.backends.base import ErrorClass, RuleViolation
from generation.engine.create import generation_create
from generation.engine.dispatch import generation_dispatch
from generation.engine.failure import generation_reroute
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.state import Next
from generation.engine.submit import generation_submit
from generation.models import Generation, GenerationState
from studio.models import Role
from tests.factories import make_member, make_workspace
from tests.fakes.bfl_server import FakeBFL
from tests.fakes.fal_server import FakeFal

S = GenerationState


class RedisPrefixMixin:
    """A Redis key prefix of its own per test (caps, breakers, speed cache), cleared after."""

    def use_prefix(self, tag: str) -> None:
        self.prefix = f"test-{tag}-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(ENGINE_REDIS_PREFIX=self.prefix)
        overrides.enable()
        self.addCleanup(overrides.disable)  # type: ignore[attr-defined]
        self.addCleanup(self._clear_redis)  # type: ignore[attr-defined]

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)


# --- the breaker on its own -----------------------------------------------------------------------


@override_settings(
    ENGINE_BREAKER_THRESHOLD=3,
    ENGINE_BREAKER_WINDOW=60.0,
    ENGINE_BREAKER_COOLDOWN=30.0,
    ENGINE_BREAKER_PROBE_TTL=20.0,
)
class BreakerTests(RedisPrefixMixin, TestCase):
    key = "bfl:env"
    t0 = 1_800_000_000.0

    def setUp(self) -> None:
        super().setUp()
        self.use_prefix("breaker")

    def fail(self, at: float, error_class: str = ErrorClass.PROVIDER_ERROR) -> str:
        return breaker.record_failure(self.key, error_class, "boom", at=at)

    def test_it_opens_after_n_failures_stays_open_half_opens_and_closes_on_success(
        self,
    ) -> None:
        t = self.t0
        self.assertEqual(self.fail(t), breaker.CLOSED)
        self.assertEqual(self.fail(t + 1), breaker.CLOSED)
        self.assertEqual(breaker.allow(self.key, at=t + 2), (True, 0.0))
        self.assertEqual(self.fail(t + 2), breaker.OPEN)  # the third within the window
        # Open: every caller is refused until the cool-down has passed, and told how long.
        for dt in (2.5, 10, 31.9):
            allowed, wait = breaker.allow(self.key, at=t + dt)
            self.assertFalse(allowed)
            self.assertAlmostEqual(wait, 32 - dt, places=3)
        state = breaker.state(self.key, at=t + 10)
        self.assertEqual((state.state, state.open_until), (breaker.OPEN, t + 32))
        self.assertIn("provider_error: boom", state.last_error)
        self.assertTrue(breaker.is_open(self.key, at=t + 10))
        # Half-open after the cool-down: exactly one probe goes through.
        self.assertEqual(breaker.state(self.key, at=t + 33).state, breaker.HALF_OPEN)
        self.assertFalse(breaker.is_open(self.key, at=t + 33))  # a probe may go
        self.assertEqual(breaker.allow(self.key, at=t + 33), (True, 0.0))
        allowed, wait = breaker.allow(self.key, at=t + 34)
        self.assertFalse(allowed)
        self.assertAlmostEqual(wait, 19.0, places=3)  # until the probe's lease lapses
        self.assertTrue(breaker.is_open(self.key, at=t + 34))
        # The probe's generation finished: closed, everyone goes.
        breaker.record_success(self.key)
        self.assertEqual(breaker.state(self.key, at=t + 35).state, breaker.CLOSED)
        for _ in range(3):
            self.assertEqual(breaker.allow(self.key, at=t + 35), (True, 0.0))

    def test_a_failed_probe_opens_it_again_for_a_new_cool_down(self) -> None:
        t = self.t0
        for i in range(3):
            self.fail(t + i)
        self.assertTrue(breaker.allow(self.key, at=t + 40)[0])  # the probe
        self.assertEqual(self.fail(t + 41), breaker.OPEN)
        allowed, wait = breaker.allow(self.key, at=t + 42)
        self.assertFalse(allowed)
        self.assertAlmostEqual(wait, 29.0, places=3)
        self.assertTrue(breaker.allow(self.key, at=t + 71.5)[0])  # the next probe

    def test_a_probe_whose_worker_died_is_replaced_after_its_lease(self) -> None:
        t = self.t0
        for i in range(3):
            self.fail(t + i)
        self.assertTrue(breaker.allow(self.key, at=t + 40)[0])
        self.assertFalse(breaker.allow(self.key, at=t + 59)[0])
        self.assertTrue(breaker.allow(self.key, at=t + 60.5)[0])

    def test_failures_spread_beyond_the_window_do_not_open_it(self) -> None:
        t = self.t0
        self.fail(t)
        self.fail(t + 30)
        self.assertEqual(
            self.fail(t + 61), breaker.CLOSED
        )  # the streak restarted at t+61
        self.assertEqual(self.fail(t + 70), breaker.CLOSED)
        self.assertEqual(self.fail(t + 80), breaker.OPEN)

    def test_a_success_ends_the_streak(self) -> None:
        t = self.t0
        self.fail(t)
        self.fail(t + 1)
        breaker.record_success(self.key)
        self.assertEqual(self.fail(t + 2), breaker.CLOSED)
        self.assertEqual(self.fail(t + 3), breaker.CLOSED)

    def test_only_failures_that_say_the_backend_is_unwell_count(self) -> None:
        for error_class in (
            ErrorClass.RATE_LIMITED,
            ErrorClass.MODERATED,
            ErrorClass.INVALID_REQUEST,
            ErrorClass.NOT_FOUND,
            ErrorClass.EXPIRED,
            ErrorClass.BAD_RESULT,
        ):
            for i in range(5):
                self.assertEqual(self.fail(self.t0 + i, error_class), "")
        self.assertEqual(breaker.state(self.key).state, breaker.CLOSED)
        for error_class in (ErrorClass.AUTH, ErrorClass.QUOTA, ErrorClass.NETWORK):
            self.fail(self.t0 + 10, error_class)
        self.assertEqual(breaker.state(self.key, at=self.t0 + 11).state, breaker.OPEN)

    def test_breakers_are_per_credentials(self) -> None:
        for i in range(3):
            self.fail(self.t0 + i)
        self.assertTrue(breaker.is_open("bfl:env", at=self.t0 + 5))
        self.assertFalse(breaker.is_open("bfl:12", at=self.t0 + 5))
        self.assertFalse(breaker.is_open("fal:env", at=self.t0 + 5))

    def test_the_same_rules_without_redis(self) -> None:
        with mock.patch.object(caps, "redis_client", return_value=None):
            t = self.t0
            for i in range(3):
                self.fail(t + i)
            self.assertFalse(breaker.allow(self.key, at=t + 10)[0])
            self.assertTrue(breaker.allow(self.key, at=t + 33)[0])
            self.assertFalse(breaker.allow(self.key, at=t + 34)[0])
            breaker.record_success(self.key)
            self.assertTrue(breaker.allow(self.key, at=t + 35)[0])


# --- choosing a backend ---------------------------------------------------------------------------


class PlanTests(RedisPrefixMixin, TestCase):
    """routing.plan with real backends' rules and prices; nothing is sent anywhere."""

    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = make_workspace("Routing plan")

    def setUp(self) -> None:
        super().setUp()
        self.use_prefix("plan")
        env = {
            "FAL_KEY": "fal-key",
            "REPLICATE_API_TOKEN": "r8_token",
            "CLOUDFLARE_API_TOKEN": "cf-token",
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "COMFYUI_URL": "",
            "FLUX2_MODEL_PATH": "",
        }
        patcher = override_settings(**env)
        patcher.enable()
        self.addCleanup(patcher.disable)
        overrides = override_settings(BFL_API_KEY="bfl-key")
        overrides.enable()
        self.addCleanup(overrides.disable)

    def request(self, model: str = "flux-2-pro", size: int = 1024) -> Any:
        from generation.engine import policy as engine

        return engine.build_request(
            model=model,
            prompt="a mug",
            width=size,
            height=size,
            seed=1,
            params={},
            references=(),
        )

    def plan(self, policy: str, fallback: tuple[str, ...] = (), **kw: Any) -> Any:
        return routing.plan(
            workspace_id=self.workspace.pk,
            policy=policy,
            request=self.request(**kw),
            fallback=fallback,
        )

    def test_cheapest_picks_the_lowest_estimate_and_keeps_the_rest_as_fallbacks(
        self,
    ) -> None:
        route = self.plan("cheapest", model="flux-2-klein-4b")
        # Cloudflare prices [klein] 4B per 512-px tile: far below BFL's and fal's $0.014.
        self.assertEqual(route.backend, "cloudflare")
        self.assertLess(route.estimate, Decimal("0.014"))
        self.assertEqual(
            route.fallbacks[:2], ["bfl", "fal"]
        )  # ties keep registry order
        self.assertNotIn("preview", route.fallbacks)  # free, but only a draft
        entry = route.entries[0]
        self.assertEqual(
            (entry["backend"], entry["outcome"], entry["policy"]),
            ("cloudflare", "chosen", "cheapest"),
        )
        self.assertEqual([r["backend"] for r in entry["ranking"]][0], "cloudflare")
        self.assertIn("comfyui", entry["passed_over"])  # not configured

    def test_cheapest_among_a_given_list(self) -> None:
        route = self.plan("cheapest", ("replicate", "fal"))
        self.assertEqual((route.backend, route.fallbacks), ("replicate", ["fal"]))

    def test_fastest_uses_measured_history(self) -> None:
        now = timezone.now()
        for backend, seconds in (("bfl", 12), ("bfl", 14), ("fal", 4), ("fal", 6)):
            Generation.objects.create(
                workspace=self.workspace,
                backend=backend,
                model="flux-2-pro",
                prompt="x",
                width=64,
                height=64,
                state=S.SUCCEEDED,
                submitted_at=now - timedelta(seconds=seconds + 60),
                finished_at=now - timedelta(seconds=60),
            )
        self.assertEqual(routing.speed("fal", "flux-2-pro"), 5.0)
        self.assertEqual(routing.speed("bfl", "flux-2-pro"), 13.0)
        self.assertIsNone(routing.speed("replicate", "flux-2-pro"))
        route = self.plan("fastest", ("bfl", "replicate", "fal"))
        # Measured ones by their median, the unmeasured one after them.
        self.assertEqual(
            (route.backend, route.fallbacks), ("fal", ["bfl", "replicate"])
        )
        best = route.entries[0]["ranking"][0]
        self.assertEqual((best["backend"], best["seconds"]), ("fal", 5.0))

    def test_a_named_backend_keeps_its_chain_in_order(self) -> None:
        route = self.plan("replicate", ("bfl", "fal", "replicate"))
        self.assertEqual(
            (route.backend, route.fallbacks), ("replicate", ["bfl", "fal"])
        )

    def test_a_named_backend_that_cannot_serve_moves_to_its_fallback(self) -> None:
        # Replicate takes 32-px steps for [pro]; 1040 is not one of them.
        route = self.plan("replicate", ("bfl",), size=1040)
        self.assertEqual(route.backend, "bfl")
        self.assertIn("replicate", route.entries[0]["passed_over"])

    def test_a_named_backend_alone_still_refuses_with_its_rule(self) -> None:
        with self.assertRaises(RuleViolation) as ctx:
            self.plan("replicate", size=1040)
        self.assertEqual(ctx.exception.rule, "dimension_step")

    def test_a_policy_with_no_able_backend_names_each_reason(self) -> None:
        with self.assertRaises(RuleViolation) as ctx:
            self.plan("cheapest", ("replicate", "comfyui"), size=1040)
        self.assertEqual(ctx.exception.rule, "backend")
        self.assertIn("replicate: ", ctx.exception.message)
        self.assertIn("comfyui: ", ctx.exception.message)

    def test_unknown_names_are_refused(self) -> None:
        with self.assertRaises(LookupError):
            self.plan("cheapest", ("bfl", "midjourney"))
        with self.assertRaises(LookupError):
            self.plan("quickest")

    def test_an_open_breaker_ranks_last(self) -> None:
        for _ in range(5):
            breaker.record_failure("cloudflare:env", ErrorClass.PROVIDER_ERROR, "x")
        route = self.plan("cheapest", model="flux-2-klein-4b")
        self.assertEqual(route.backend, "bfl")
        self.assertEqual(route.fallbacks[-1], "cloudflare")
        route = self.plan("cloudflare", ("fal",), model="flux-2-klein-4b")
        self.assertEqual((route.backend, route.fallbacks), ("fal", ["cloudflare"]))

    def test_the_model_table_maps_the_vocabulary_per_backend(self) -> None:
        rows = {row.model: row for row in routing.model_table()}
        self.assertEqual(rows["flux-2-pro"].served["fal"], "fal-ai/flux-2-pro")
        self.assertEqual(
            rows["flux-2-pro"].served["replicate"], "black-forest-labs/flux-2-pro"
        )
        self.assertEqual(rows["flux-2-pro"].served["bfl"], "flux-2-pro")
        self.assertIsNone(
            rows["flux-2-pro"].served["cloudflare"]
        )  # it cannot serve [pro]
        self.assertEqual(
            rows["flux-2-dev"].served["cloudflare"], "@cf/black-forest-labs/flux-2-dev"
        )
        self.assertIsNone(rows["flux-2-dev"].served["bfl"])
        self.assertEqual(rows["flux-2-dev"].served["comfyui"], "flux2_dev.json")


# --- falling back through the engine --------------------------------------------------------------


class FallbackTestCase(RedisPrefixMixin, TestCase):
    bfl: FakeBFL
    fal: FakeFal

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.bfl = FakeBFL(latency=0.2).start()
        cls.fal = FakeFal(latency=0.2).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.bfl.stop()
        cls.fal.stop()
        super().tearDownClass()

    @classmethod
    def setUpTestData(cls) -> None:
        cls.workspace = make_workspace("Routing")
        cls.alice = make_member(
            cls.workspace, Role.EDITOR, f"alice-{uuid.uuid4().hex[:6]}"
        )

    def setUp(self) -> None:
        super().setUp()
        self.bfl.reset()
        self.fal.reset()
        self.use_prefix("fallback")
        overrides = override_settings(
            BFL_API_KEY=self.bfl.api_key,
            BFL_API_URL=self.bfl.base_url,
            BFL_ALLOWED_HOSTS=self.bfl.allowed_hosts,
            ENGINE_RETRY_BASE=0.01,
            ENGINE_RETRY_CAP=0.02,
            ENGINE_MAX_RETRIES=1,
            ENGINE_BREAKER_THRESHOLD=3,
            ENGINE_BREAKER_COOLDOWN=30.0,
            STUDIO_PUBLIC_URL="",
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        fal_settings = override_settings(**self.fal.env())
        fal_settings.enable()
        self.addCleanup(fal_settings.disable)
        patcher = mock.patch("generation.tasks.wake_dispatcher")
        patcher.start()
        self.addCleanup(patcher.stop)

    def create(
        self, backend: str = "bfl", fallback: tuple[str, ...] = ("fal",), **kw: Any
    ) -> Generation:
        values: dict[str, Any] = {
            "workspace": self.workspace,
            "backend": backend,
            "fallback": fallback,
            "model": "flux-2-pro",
            "prompt": "a red mug on a table",
            "width": 256,
            "height": 256,
            "seed": 7,
            "created_by": self.alice,
        }
        values.update(kw)
        return generation_create(**values)

    def drive(self, generation: Generation, *, max_steps: int = 80) -> Generation:
        """Run the engine's steps in-process the way workers would, dispatching the row again
        whenever it went back to a fair queue (a fallback); short real waits for the fakes."""
        gid = generation.pk
        nxt = Next()
        for _ in range(max_steps):
            if nxt.action == "none":
                row = Generation.objects.get(pk=gid)
                if row.is_terminal:
                    return row
                if row.state != S.QUEUED:
                    return row
                if row.dispatched_at is None:
                    generation_dispatch(cap_key=row.cap_key)
                nxt = Next("submit")
                continue
            if nxt.countdown:
                time.sleep(min(nxt.countdown, 0.1))
            Generation.objects.filter(pk=gid, due_at__isnull=False).update(
                due_at=timezone.now()
            )
            if nxt.action == "submit":
                nxt = generation_submit(generation_id=gid)
            elif nxt.action == "poll":
                nxt = generation_poll(generation_id=gid, seq=nxt.poll_seq)
            elif nxt.action == "ingest":
                nxt = generation_ingest(generation_id=gid)
        return Generation.objects.get(pk=gid)

    def outcomes(self, generation: Generation) -> list[tuple[str, str, str]]:
        return [
            (e["backend"], e["outcome"], e.get("error_class", ""))
            for e in generation.route
        ]


class FallbackTests(FallbackTestCase):
    def test_an_auth_failure_falls_back_to_the_next_backend_and_is_recorded(
        self,
    ) -> None:
        with override_settings(BFL_API_KEY="bfl_wrong_key"):
            generation = self.create()
            self.assertEqual(
                (
                    generation.backend,
                    generation.requested_backend,
                    generation.fallbacks,
                ),
                ("bfl", "bfl", ["fal"]),
            )
            row = self.drive(generation)
        self.assertEqual(row.state, S.SUCCEEDED, row.error_message)
        self.assertEqual(row.backend, "fal")
        self.assertEqual(row.requested_backend, "bfl")
        self.assertEqual(row.fallbacks, [])
        self.assertEqual(
            self.outcomes(row),
            [("bfl", "chosen", ""), ("bfl", "failed", "auth"), ("fal", "chosen", "")],
        )
        failed = row.route[1]
        self.assertEqual(failed["model"], "flux-2-pro")
        self.assertIn("403", failed["message"])
        self.assertTrue(failed["at"])
        self.assertEqual(row.route[2]["fallback_from"], "bfl")
        self.assertEqual(row.estimated_cost, Decimal("0.0300"))  # re-priced by fal
        self.assertEqual((row.attempts, row.retries), (2, 0))
        self.assertEqual(self.bfl.counts["submissions"], 0)  # refused, never accepted
        self.assertEqual(self.fal.counts["submissions"], 1)
        self.assertTrue(row.asset.file.name)
        self.assertEqual(caps.cap_for("bfl:env").count(), 0)  # its slot was given back

    def test_500s_fall_back_after_the_retries(self) -> None:
        self.bfl.inject("server_error", endpoint="submit", times=10)
        row = self.drive(self.create())
        self.assertEqual(row.state, S.SUCCEEDED, row.error_message)
        self.assertEqual(
            self.outcomes(row),
            [
                ("bfl", "chosen", ""),
                ("bfl", "failed", "provider_error"),
                ("fal", "chosen", ""),
            ],
        )
        self.assertEqual(row.attempts, 3)  # two on BFL (one retry), one on fal
        self.assertEqual(self.bfl.counts["submit_requests"], 2)

    def test_a_failed_task_at_the_provider_falls_back_too(self) -> None:
        self.bfl.inject(
            "error", endpoint="submit", times=5
        )  # BFL status "Error" at poll time
        row = self.drive(self.create())
        self.assertEqual((row.state, row.backend), (S.SUCCEEDED, "fal"))
        self.assertEqual(self.outcomes(row)[1], ("bfl", "failed", "provider_error"))
        self.assertEqual(row.route[1]["task_id"], self.bfl.task_ids[-1])

    def test_moderation_never_falls_back(self) -> None:
        self.bfl.inject("request_moderated", endpoint="submit", reasons=["Violence"])
        row = self.drive(self.create())
        self.assertEqual((row.state, row.backend), (S.MODERATED, "bfl"))
        self.assertEqual(self.outcomes(row), [("bfl", "chosen", "")])
        self.assertEqual(row.fallbacks, ["fal"])  # untouched: it was never needed
        self.assertEqual(self.fal.counts["submit_requests"], 0)

    def test_an_invalid_request_never_falls_back(self) -> None:
        self.bfl.inject("validation", endpoint="submit")
        row = self.drive(self.create())
        self.assertEqual((row.state, row.error_class), (S.FAILED, "invalid_request"))
        self.assertEqual(self.fal.counts["submit_requests"], 0)

    def test_with_no_usable_fallback_it_fails_with_the_first_error_and_says_why(
        self,
    ) -> None:
        with override_settings(**{"REPLICATE_API_TOKEN": "r8_token"}):
            generation = self.create(fallback=("replicate",))
        self.assertEqual(generation.fallbacks, ["replicate"])
        # Replicate's token was removed meanwhile: at fallback time it cannot serve.
        with (
            override_settings(BFL_API_KEY="bfl_wrong_key"),
            override_settings(**{"REPLICATE_API_TOKEN": ""}),
        ):
            row = self.drive(generation)
        self.assertEqual(
            (row.state, row.error_class, row.backend), (S.FAILED, "auth", "bfl")
        )
        self.assertEqual(
            self.outcomes(row),
            [
                ("bfl", "chosen", ""),
                ("bfl", "failed", "auth"),
                ("replicate", "skipped", "auth"),
            ],
        )
        self.assertIn("not configured", row.route[2]["message"])
        self.assertEqual(row.fallbacks, [])

    def test_a_fallback_that_cannot_serve_is_passed_over_when_the_route_is_planned(
        self,
    ) -> None:
        with override_settings(**{"REPLICATE_API_TOKEN": ""}):
            generation = self.create(fallback=("replicate", "fal"))
        self.assertEqual(generation.fallbacks, ["fal"])
        self.assertIn("not configured", generation.route[0]["passed_over"]["replicate"])

    def test_a_chain_of_two_fallbacks(self) -> None:
        with override_settings(**{"REPLICATE_API_TOKEN": "r8_token"}):
            generation = self.create(fallback=("replicate", "fal"))
        with (
            override_settings(BFL_API_KEY="bfl_wrong_key"),
            override_settings(**{"REPLICATE_API_TOKEN": ""}),
        ):
            row = self.drive(generation)
        self.assertEqual((row.state, row.backend), (S.SUCCEEDED, "fal"))
        self.assertEqual(
            self.outcomes(row),
            [
                ("bfl", "chosen", ""),
                ("bfl", "failed", "auth"),
                ("replicate", "skipped", "auth"),
                ("fal", "chosen", ""),
            ],
        )

    def test_a_re_route_happens_once_whoever_asks_twice(self) -> None:
        generation = self.create()
        self.assertIn(generation.pk, generation_dispatch(cap_key="bfl:env").ids)
        stale = Generation.objects.get(pk=generation.pk)
        Generation.objects.filter(pk=generation.pk).update(attempts=1)  # its own claim
        first = generation_reroute(
            generation=stale, error_class="auth", message="bad key", step="submit"
        )
        second = generation_reroute(
            generation=stale, error_class="auth", message="bad key", step="submit"
        )
        self.assertEqual(first.wake, ("bfl:env", "fal:env"))
        self.assertEqual(second, Next())
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual(row.backend, "fal")
        self.assertEqual(len(row.route), 3)

    def test_cheapest_with_a_fallback_chain(self) -> None:
        with override_settings(BFL_API_KEY="bfl_wrong_key"):
            generation = self.create(backend="cheapest", fallback=("bfl", "fal"))
            self.assertEqual(generation.requested_backend, "cheapest")
            row = self.drive(generation)
        self.assertEqual((row.state, row.backend), (S.SUCCEEDED, "fal"))
        self.assertEqual(row.route[0]["policy"], "cheapest")


class BreakerEngineTests(FallbackTestCase):
    """The breaker as the engine uses it: opened by real failures, consulted before each submit."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = 1_800_000_000.0
        patcher = mock.patch.object(breaker, "now", side_effect=lambda: self.clock)
        patcher.start()
        self.addCleanup(patcher.stop)

    def open_bfl_breaker(self) -> None:
        with override_settings(BFL_API_KEY="bfl_wrong_key"):
            for _ in range(3):
                row = self.drive(self.create(fallback=()))
                self.assertEqual((row.state, row.error_class), (S.FAILED, "auth"))
        self.assertEqual(breaker.state("bfl:env").state, breaker.OPEN)

    def test_the_breaker_opens_on_failures_and_routes_around_the_backend(self) -> None:
        self.open_bfl_breaker()
        requests_before = self.bfl.counts["submit_requests"]
        row = self.drive(self.create())  # BFL with fal as fallback, key fixed meanwhile
        self.assertEqual((row.state, row.backend), (S.SUCCEEDED, "fal"))
        # Chosen while open? No: plan() ranks an open breaker last, so fal is chosen at once.
        self.assertEqual(row.route[0]["backend"], "fal")
        self.assertEqual(self.bfl.counts["submit_requests"], requests_before)

    def test_an_open_breaker_moves_a_queued_generation_on_before_sending_it(
        self,
    ) -> None:
        generation = self.create()  # chosen while closed
        self.assertEqual(generation.backend, "bfl")
        self.open_bfl_breaker()
        requests_before = self.bfl.counts["submit_requests"]
        row = self.drive(generation)
        self.assertEqual((row.state, row.backend), (S.SUCCEEDED, "fal"))
        self.assertEqual(
            self.outcomes(row),
            [
                ("bfl", "chosen", ""),
                ("bfl", "skipped", "circuit_open"),
                ("fal", "chosen", ""),
            ],
        )
        self.assertEqual(self.bfl.counts["submit_requests"], requests_before)

    def test_without_a_fallback_it_waits_for_the_probe_and_the_success_closes_it(
        self,
    ) -> None:
        self.open_bfl_breaker()
        generation = self.create(fallback=())
        generation_dispatch(cap_key="bfl:env")
        requests_before = self.bfl.counts["submit_requests"]
        # Open: held, nothing sent, told to come back within the re-check interval.
        nxt = generation_submit(generation_id=generation.pk)
        self.assertEqual(nxt.action, "submit")
        self.assertLessEqual(nxt.countdown, 5.0)
        row = Generation.objects.get(pk=generation.pk)
        self.assertEqual((row.state, row.attempts), (S.QUEUED, 0))
        self.assertIn("circuit breaker is open", row.error_message)
        self.assertEqual(self.bfl.counts["submit_requests"], requests_before)
        # Still open 20 s later.
        self.clock += 20
        Generation.objects.filter(pk=generation.pk).update(due_at=timezone.now())
        self.assertEqual(
            generation_submit(generation_id=generation.pk).action, "submit"
        )
        self.assertEqual(self.bfl.counts["submit_requests"], requests_before)
        # After the cool-down this generation is the probe; a second one must wait for it.
        self.clock += 11
        other = self.create(fallback=())
        generation_dispatch(cap_key="bfl:env")
        row = self.drive(generation)
        self.assertEqual(row.state, S.SUCCEEDED, row.error_message)
        # The probe succeeded: closed again, the other one goes straight through.
        self.assertEqual(breaker.state("bfl:env").state, breaker.CLOSED)
        self.assertEqual(self.drive(other).state, S.SUCCEEDED)

    def test_a_failed_probe_keeps_it_open(self) -> None:
        self.open_bfl_breaker()
        self.clock += 31
        with override_settings(BFL_API_KEY="bfl_wrong_key"):
            row = self.drive(self.create(fallback=()))
        self.assertEqual(row.state, S.FAILED)
        state = breaker.state("bfl:env")
        self.assertEqual(state.state, breaker.OPEN)
        self.assertEqual(state.open_until, self.clock + 30)


class RoutingCommandTests(FallbackTestCase):
    def generate(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            call_command("generate", *args, stdout=out, stderr=err)
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    def test_cheapest_with_fallbacks_on_the_command_line(self) -> None:
        import tempfile
        from pathlib import Path

        out_file = Path(tempfile.mkdtemp(prefix="routing-cmd-")) / "out.jpg"
        with override_settings(BFL_API_KEY="bfl_wrong_key"):
            code, out, err = self.generate(
                "--backend", "cheapest", "--fallback", "bfl,fal", "--prompt", "a mug",
                "--width", "256", "--height", "256", "--out", str(out_file),
            )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertTrue(out_file.exists())
        self.assertIn("on bfl/flux-2-pro (cheapest), falling back on fal", out)
        self.assertIn("bfl failed (auth): ", out)
        self.assertIn("falling back to fal, estimated $0.0300", out)
        row = Generation.objects.get()
        self.assertEqual((row.backend, row.requested_backend), ("fal", "cheapest"))

    def test_an_unknown_fallback_exits_2(self) -> None:
        code, _out, err = self.generate(
            "--backend", "fastest", "--fallback", "bfl,nope", "--prompt", "x"
        )
        self.assertEqual(code, 2)
        self.assertIn("Unknown backend 'nope'", err)
