"""Orchestration: retry classification, Retry-After, backoff, the Redis cap, fairness, the sweep."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import redis
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from generation import caps, tasks
from generation.backends.base import BackendError, ErrorClass, Submission
from generation.engine import policy as engine
from generation.engine import submit as engine_submit
from generation.engine.dispatch import generation_dispatch
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.state import Next
from generation.engine.submit import generation_submit
from generation.engine.sweep import generation_sweep
from generation.models import Generation, GenerationState
from tests.generation.test_engine_state import (
    EngineTestCase,
    ScriptedBackend,
    failed,
    pending,
    ready,
)

S = GenerationState


def err(
    cls: ErrorClass,
    *,
    retryable: bool = False,
    retry_after: float | None = None,
    **details: object,
) -> BackendError:
    return BackendError(
        cls,
        f"{cls} happened",
        retryable=retryable,
        retry_after=retry_after,
        details=details,
    )


class DecisionTests(EngineTestCase):
    def test_classification(self) -> None:
        cases = [
            (err(ErrorClass.MODERATED), "moderated"),
            (err(ErrorClass.EXPIRED), "expired"),
            (err(ErrorClass.AUTH), "failed"),
            (err(ErrorClass.QUOTA), "failed"),
            (err(ErrorClass.INVALID_REQUEST), "failed"),
            (err(ErrorClass.NOT_FOUND), "failed"),
            (err(ErrorClass.NETWORK, retryable=True), "retry"),
            (err(ErrorClass.PROVIDER_ERROR, retryable=True), "retry"),
            (err(ErrorClass.TIMEOUT, retryable=True), "retry"),
            (err(ErrorClass.RATE_LIMITED, retryable=True, retry_after=3), "retry"),
        ]
        for error, outcome in cases:
            with self.subTest(error.error_class):
                self.assertEqual(
                    engine.decide(error, retries=0, rate_limited=0).outcome, outcome
                )

    def test_moderation_is_terminal_even_if_a_backend_calls_it_retryable(self) -> None:
        self.assertEqual(
            engine.decide(
                err(ErrorClass.MODERATED, retryable=True), retries=0, rate_limited=0
            ).outcome,
            "moderated",
        )

    def test_retry_after_is_honoured_with_at_most_ten_percent_jitter(self) -> None:
        rng = random.Random(1)
        for _ in range(200):
            decision = engine.decide(
                err(ErrorClass.RATE_LIMITED, retryable=True, retry_after=7),
                retries=0,
                rate_limited=3,
                rng=rng,
            )
            self.assertEqual(decision.counter, "rate_limited")
            self.assertGreaterEqual(decision.delay, 7)
            self.assertLessEqual(decision.delay, 7.7)

    def test_a_retry_after_on_a_5xx_is_a_floor_for_the_backoff(self) -> None:
        decision = engine.decide(
            err(ErrorClass.PROVIDER_ERROR, retryable=True, retry_after=12),
            retries=0,
            rate_limited=0,
        )
        self.assertGreaterEqual(decision.delay, 12)

    @override_settings(ENGINE_RETRY_BASE=0.5, ENGINE_RETRY_CAP=10.0)
    def test_backoff_is_exponential_with_full_jitter_and_capped(self) -> None:
        rng = random.Random(7)
        for n, ceiling in [
            (0, 0.5),
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (40, 10.0),
        ]:
            samples = [engine.backoff(n, rng=rng) for _ in range(400)]
            self.assertLessEqual(max(samples), ceiling)
            # Full jitter: spread over the whole range, not bunched at the ceiling.
            self.assertLess(min(samples), ceiling * 0.1)
            self.assertGreater(max(samples), ceiling * 0.9)
            # ... and evenly: each quarter of 0 .. ceiling draws about a quarter of the delays
            # (400 draws: 100 ± 3.5 standard deviations), which "equal jitter" (half the ceiling
            # plus a random half) or a skewed draw would not.
            quarters = Counter(min(int(4 * s / ceiling), 3) for s in samples)
            for quarter in range(4):
                self.assertTrue(70 <= quarters[quarter] <= 130, (n, quarters))

    @override_settings(ENGINE_MAX_RETRIES=3, ENGINE_MAX_RATE_LIMITED=4)
    def test_attempts_are_capped(self) -> None:
        network = err(ErrorClass.NETWORK, retryable=True)
        self.assertEqual(
            engine.decide(network, retries=2, rate_limited=0).outcome, "retry"
        )
        self.assertEqual(
            engine.decide(network, retries=3, rate_limited=0).outcome, "failed"
        )
        limited = err(ErrorClass.RATE_LIMITED, retryable=True, retry_after=1)
        self.assertEqual(
            engine.decide(limited, retries=9, rate_limited=3).outcome, "retry"
        )
        self.assertEqual(
            engine.decide(limited, retries=0, rate_limited=4).outcome, "failed"
        )


@override_settings(
    ENGINE_POLL_INITIAL=0.5,
    ENGINE_POLL_MIN=0.1,
    ENGINE_POLL_MAX=8.0,
    ENGINE_POLL_AIM=0.95,
)
class PollDelayTests(EngineTestCase):
    def test_without_a_hint_it_backs_off_up_to_the_cap(self) -> None:
        elapsed, delays = 0.0, []
        for _ in range(14):
            delay = engine.poll_delay(elapsed=elapsed)
            delays.append(delay)
            elapsed += delay
        self.assertEqual(delays[0], 0.5)
        self.assertEqual(
            delays, sorted(delays[:1]) + sorted(delays[1:])
        )  # growing after the first
        self.assertEqual(max(delays), 8.0)
        self.assertTrue(all(0.1 <= d <= 8.0 for d in delays))

    def test_provider_progress_is_a_latency_hint(self) -> None:
        # 40% after 2 s: about 3 s to go (polled 10 ms after the expected finish).
        self.assertAlmostEqual(engine.poll_delay(elapsed=2.0, progress=0.4), 3.01)
        # Nearly done: just after the expected finish, but never more often than MIN/4.
        self.assertAlmostEqual(
            engine.poll_delay(elapsed=2.0, progress=0.99), 2 / 99 + 0.01
        )
        self.assertEqual(engine.poll_delay(elapsed=0.001, progress=0.999), 0.025)
        self.assertEqual(
            engine.poll_delay(elapsed=1.0, progress=0.06), 8.0
        )  # and the maximum

    def test_the_observed_duration_aims_the_first_poll(self) -> None:
        self.assertAlmostEqual(engine.poll_delay(elapsed=0.0, estimate=2.0), 1.9)
        # Past the estimate: short polls, growing with the time overdue.
        self.assertEqual(engine.poll_delay(elapsed=1.9, estimate=2.0), 0.1)
        self.assertAlmostEqual(engine.poll_delay(elapsed=3.9, estimate=2.0), 1.0)

    def test_durations_are_learned_per_backend_and_model(self) -> None:
        self.assertIsNone(engine.duration_estimate("scripted", "m"))
        engine.record_duration("scripted", "m", 2.0)
        engine.record_duration("scripted", "m", 3.0)
        self.assertAlmostEqual(engine.duration_estimate("scripted", "m") or 0, 2.3)
        self.assertIsNone(engine.duration_estimate("scripted", "other"))


class RetryServiceTests(EngineTestCase):
    def test_a_429_waits_out_retry_after_and_keeps_the_slot(self) -> None:
        ScriptedBackend.submits = [
            err(ErrorClass.RATE_LIMITED, retryable=True, retry_after=7)
        ]
        generation = self.create()
        self.dispatch(generation)
        before = timezone.now()
        nxt = generation_submit(generation_id=generation.pk)
        self.assertEqual(nxt.action, "submit")
        self.assertGreaterEqual(nxt.countdown, 7)
        row = self.reload(generation)
        self.assertEqual((row.state, row.rate_limited, row.retries), (S.QUEUED, 1, 0))
        self.assertEqual(row.error_class, ErrorClass.RATE_LIMITED)
        self.assertGreaterEqual(row.due_at, before + timedelta(seconds=7))
        self.assertEqual(self.lease_members(generation.cap_key), {generation.pk})
        # The retry fired early (a duplicate, a sweep) does nothing before its time.
        self.assertEqual(generation_submit(generation_id=generation.pk).action, "none")
        self.assertEqual(ScriptedBackend.calls["submit"], 1)
        Generation.objects.filter(pk=generation.pk).update(due_at=timezone.now())
        self.assertEqual(generation_submit(generation_id=generation.pk).action, "poll")
        row = self.reload(generation)
        self.assertEqual(
            (row.state, row.attempts, row.error_class), (S.SUBMITTED, 2, "")
        )

    @override_settings(ENGINE_MAX_RETRIES=2, ENGINE_RETRY_BASE=0.01)
    def test_network_errors_are_retried_then_failed_with_the_last_error(self) -> None:
        ScriptedBackend.submits = [
            err(ErrorClass.NETWORK, retryable=True),
            err(ErrorClass.PROVIDER_ERROR, retryable=True),
            BackendError(
                ErrorClass.PROVIDER_ERROR,
                "submit: HTTP 503: maintenance",
                retryable=True,
                status_code=503,
            ),
        ]
        row = self.run_to_end(self.create())
        self.assertEqual(row.state, S.FAILED)
        self.assertEqual((row.retries, row.attempts), (2, 3))
        self.assertEqual(row.error_class, ErrorClass.PROVIDER_ERROR)
        # Members read the classified message; the provider's words are kept for admins.
        self.assertEqual(row.error_message, "Provider error (HTTP 503).")
        self.assertEqual(
            row.provider_details["error_raw"], "submit: HTTP 503: maintenance"
        )
        self.assertEqual(row.provider_details["error_status"], 503)
        self.assertEqual(self.lease_members(row.cap_key), set())

    @override_settings(ENGINE_RETRY_BASE=0.01)
    def test_a_poll_network_error_retries_the_poll_not_the_submit(self) -> None:
        ScriptedBackend.polls = [err(ErrorClass.NETWORK, retryable=True), ready()]
        row = self.run_to_end(self.create())
        self.assertEqual(row.state, S.SUCCEEDED)
        self.assertEqual(
            (
                ScriptedBackend.calls["submit"],
                ScriptedBackend.calls["poll"],
                row.retries,
            ),
            (1, 2, 1),
        )

    def test_a_bad_key_fails_at_once(self) -> None:
        ScriptedBackend.submits = [
            BackendError(
                ErrorClass.AUTH, "submit: HTTP 403: Forbidden", status_code=403
            )
        ]
        row = self.run_to_end(self.create())
        self.assertEqual(
            (row.state, row.error_class, row.retries), (S.FAILED, "auth", 0)
        )

    @override_settings(ENGINE_RETRY_BASE=0.01)
    def test_a_provider_side_error_resubmits_and_keeps_the_old_task_id(self) -> None:
        ScriptedBackend.polls = [
            failed(err(ErrorClass.PROVIDER_ERROR, retryable=True)),
            ready(),
        ]
        row = self.run_to_end(self.create())
        self.assertEqual(row.state, S.SUCCEEDED)
        self.assertEqual(
            (row.attempts, row.retries, row.provider_task_id), (2, 1, "task-2")
        )
        self.assertEqual(row.provider_details["previous_task_ids"], ["task-1"])

    def test_moderation_is_terminal_explained_and_never_retried(self) -> None:
        moderation = BackendError(
            ErrorClass.MODERATED,
            "BFL moderation refused the generated image: Derivative Works Filter.",
            details={"moderation": "content", "reasons": ["Derivative Works Filter"]},
        )
        ScriptedBackend.polls = [failed(moderation)]
        row = self.run_to_end(self.create())
        self.assertEqual(
            (row.state, row.error_class, row.retries, row.attempts),
            (S.MODERATED, "moderated", 0, 1),
        )
        self.assertEqual(row.moderation_reasons, ["Derivative Works Filter"])
        self.assertEqual(row.provider_details["moderation_stage"], "content")
        self.assertIn("Derivative Works Filter", row.error_message)
        self.assertIsNotNone(row.finished_at)
        self.assertEqual(self.lease_members(row.cap_key), set())
        self.assertEqual(ScriptedBackend.calls["submit"], 1)

    def test_an_expired_result_url_is_retried_while_the_provider_keeps_it(self) -> None:
        # Issue 10 item 5: one 403 on the result URL must not lose a paid image. The provider
        # still answers Ready (same URL): retried with backoff, re-polled, then downloaded.
        expired = err(ErrorClass.EXPIRED)
        ScriptedBackend.fetches = [expired, expired]
        ScriptedBackend.polls = [ready("https://delivery.example/a.png")] * 3
        row = self.run_to_end(self.create())
        self.assertEqual((row.state, row.retries), (S.SUCCEEDED, 1))
        self.assertEqual(ScriptedBackend.calls["fetch"], 3)

    def test_an_expired_result_url_expires_after_the_retries(self) -> None:
        expired = err(ErrorClass.EXPIRED)
        ScriptedBackend.fetches = [expired] * 20
        ScriptedBackend.polls = [ready("https://delivery.example/a.png")] * 20
        with override_settings(ENGINE_MAX_RETRIES=2):
            row = self.run_to_end(self.create())
        self.assertEqual((row.state, row.error_class), (S.EXPIRED, "expired"))
        self.assertEqual(row.retries, 2)
        self.assertEqual(row.actual_cost, Decimal("0.045"))  # paid, and lost

    def test_a_result_the_provider_no_longer_has_expires_at_once(self) -> None:
        ScriptedBackend.fetches = [err(ErrorClass.EXPIRED)]
        ScriptedBackend.polls = [
            ready("https://delivery.example/a.png"),
            failed(err(ErrorClass.NOT_FOUND)),
        ]
        row = self.run_to_end(self.create())
        self.assertEqual((row.state, row.retries), (S.EXPIRED, 0))

    def test_an_expired_result_url_with_a_fresh_one_succeeds(self) -> None:
        ScriptedBackend.fetches = [err(ErrorClass.EXPIRED)]
        ScriptedBackend.polls = [
            ready("https://delivery.example/a.png"),
            ready("https://delivery.example/b.png"),
        ]
        self.assertEqual(self.run_to_end(self.create()).state, S.SUCCEEDED)

    @override_settings(ENGINE_PROVIDER_DEADLINE=60)
    def test_a_provider_that_never_finishes_expires(self) -> None:
        ScriptedBackend.polls = [pending()]
        generation = self.create()
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        Generation.objects.filter(pk=generation.pk).update(
            submitted_at=timezone.now() - timedelta(seconds=61)
        )
        generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        row = self.reload(generation)
        self.assertEqual((row.state, row.error_class), (S.EXPIRED, "timeout"))


class ConcurrencyCapTests(EngineTestCase):
    def two_workers(self) -> tuple[caps.RedisCap, caps.RedisCap]:
        # Two separate connections, as two worker processes would have.
        first = caps.RedisCap(redis.Redis.from_url(settings.REDIS_URL), "bfl:env")
        second = caps.RedisCap(redis.Redis.from_url(settings.REDIS_URL), "bfl:env")
        return first, second

    def test_the_cap_is_shared_and_a_duplicate_takes_no_second_slot(self) -> None:
        a, b = self.two_workers()
        self.assertTrue(all(a.acquire(i, limit=3, ttl=60) for i in (1, 2)))
        self.assertTrue(b.acquire(3, limit=3, ttl=60))
        self.assertFalse(b.acquire(4, limit=3, ttl=60))
        self.assertTrue(
            b.acquire(2, limit=3, ttl=60)
        )  # the same generation again: still its slot
        self.assertEqual((a.count(), b.count()), (3, 3))
        a.release(1)
        self.assertTrue(b.acquire(4, limit=3, ttl=60))
        self.assertEqual(a.members(), {2, 3, 4})

    def test_a_dead_workers_lease_expires(self) -> None:
        a, b = self.two_workers()
        self.assertTrue(a.acquire(1, limit=1, ttl=0.2))
        self.assertFalse(b.acquire(2, limit=1, ttl=60))
        time.sleep(0.3)
        self.assertTrue(b.acquire(2, limit=1, ttl=60))

    def test_renew_counts_a_task_the_provider_still_runs_even_past_the_limit(
        self,
    ) -> None:
        a, _b = self.two_workers()
        a.acquire(1, limit=1, ttl=60)
        a.renew(2, ttl=60)
        self.assertEqual(a.count(), 2)

    def test_racing_workers_never_exceed_the_cap(self) -> None:
        results: list[bool] = []
        lock = threading.Lock()

        # Seeded from the database once, here: the threads then only race for the slots.
        caps.cap_for("bfl:4242").count()

        def worker(start: int) -> None:
            cap = caps.RedisCap(redis.Redis.from_url(settings.REDIS_URL), "bfl:4242")
            for member in range(start, start + 10):
                got = cap.acquire(member, limit=24, ttl=60)
                with lock:
                    results.append(got)

        threads = [threading.Thread(target=worker, args=(i * 100,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(results.count(True), 24)
        self.assertEqual(caps.cap_for("bfl:4242").count(), 24)

    @override_settings(ENGINE_CONCURRENCY={"scripted": 3})
    def test_the_dispatcher_hands_out_only_free_slots(self) -> None:
        generations = [self.create() for _ in range(5)]
        first = generation_dispatch(cap_key="scripted:env")
        self.assertEqual(first.ids, [g.pk for g in generations[:3]])
        self.assertFalse(
            first.backlog
        )  # it filled the cap: the next release wakes the dispatcher
        self.assertEqual(self.lease_members("scripted:env"), set(first.ids))
        again = generation_dispatch(cap_key="scripted:env")
        self.assertEqual((again.ids, again.backlog), ([], True))
        # One finishes at the provider: its slot goes to the next in line.
        generation_submit(generation_id=first.ids[0])
        nxt = generation_poll(generation_id=first.ids[0], seq=0)
        self.assertEqual(nxt.wake, ("scripted:env",))
        self.assertEqual(
            generation_dispatch(cap_key="scripted:env").ids,
            [generations[3].pk],
        )

    @override_settings(ENGINE_CONCURRENCY={"scripted": 1})
    def test_a_submit_that_lost_its_slot_goes_back_to_the_fair_queue(self) -> None:
        one, two = self.create(), self.create()
        self.dispatch(one)
        # Two was dispatched long ago; its lease expired and one took the only slot.
        Generation.objects.filter(pk=two.pk).update(
            dispatched_at=timezone.now(), due_at=timezone.now()
        )
        nxt = generation_submit(generation_id=two.pk)
        self.assertEqual(nxt.wake, ("scripted:env",))
        row = self.reload(two)
        self.assertEqual(
            (row.state, row.dispatched_at, ScriptedBackend.calls["submit"]),
            (S.QUEUED, None, 0),
        )

    @override_settings(ENGINE_CONCURRENCY={"scripted": 2}, ENGINE_CAP_RECHECK=3.0)
    def test_a_full_cap_reschedules_the_dispatcher_instead_of_waiting(self) -> None:
        for _ in range(3):
            self.create()
        with (
            mock.patch.object(tasks.generation_submit, "delay") as submit,
            mock.patch.object(tasks.generation_dispatch, "apply_async") as later,
        ):
            tasks.generation_dispatch.run("scripted:env")
            tasks.generation_dispatch.run("scripted:env")
        self.assertEqual(submit.call_count, 2)
        later.assert_called_once_with(
            ("scripted:env",), countdown=3.0
        )  # one pending re-check, not two


class FairSchedulingTests(EngineTestCase):
    def test_a_big_batch_does_not_starve_a_small_request(self) -> None:
        batch = [
            self.create(created_by=self.alice, prompt=f"variant {i}")
            for i in range(1000)
        ]
        # Alice's batch is running: the first 24 are at the provider.
        started = self.take(24)
        self.assertEqual(started, [g.pk for g in batch[:24]])
        bobs = {
            self.create(created_by=self.bob, prompt=f"bob {i}").pk for i in range(4)
        }
        order = self.take(8)
        self.assertEqual(set(order) & bobs, bobs)  # all four within the next eight
        owners = ["bob" if pk in bobs else "alice" for pk in order]
        self.assertEqual(owners, ["alice", "bob"] * 4)
        # Alice's batch keeps its own order.
        alice_order = [pk for pk in order if pk not in bobs]
        self.assertEqual(alice_order, [g.pk for g in batch[24:28]])

    def test_a_late_owner_starts_now_not_behind_earlier_history(self) -> None:
        first = self.create(created_by=self.bob)
        self.take(1)
        alice = [self.create(created_by=self.alice) for _ in range(3)]
        bob = self.create(created_by=self.bob)
        order = self.take(4)
        self.assertEqual(order[:2], [alice[0].pk, bob.pk])
        self.assertNotIn(first.pk, order)

    def test_priority_goes_first(self) -> None:
        normal = [self.create(created_by=self.alice) for _ in range(3)]
        urgent = self.create(created_by=self.bob, priority=5)
        self.assertEqual(self.take(2), [urgent.pk, normal[0].pk])

    def take(self, n: int) -> list[int]:
        """Dispatch n rows one at a time, as slots free up one by one (the cap is 1)."""
        order: list[int] = []
        cap = caps.cap_for("scripted:env")
        for _ in range(n):
            ids = generation_dispatch(cap_key="scripted:env").ids
            order.extend(ids)
            for pk in ids:
                cap.release(pk)
        return order

    def setUp(self) -> None:
        super().setUp()
        overrides = override_settings(ENGINE_CONCURRENCY={"scripted": 1})
        overrides.enable()
        self.addCleanup(overrides.disable)


@override_settings(
    ENGINE_STUCK_AFTER=30, ENGINE_PROVIDER_DEADLINE=900, ENGINE_QUEUE_DEADLINE=86400
)
class SweepTests(EngineTestCase):
    def make_state(self, state: str, *, overdue: float, **fields: object) -> Generation:
        generation = self.create()
        Generation.objects.filter(pk=generation.pk).update(
            state=state,
            dispatched_at=timezone.now(),
            due_at=timezone.now() - timedelta(seconds=overdue),
            submitted_at=timezone.now() if state != S.QUEUED else None,
            **fields,
        )
        return self.reload(generation)

    def test_it_redrives_each_kind_of_stuck_work_once(self) -> None:
        queued = self.make_state(S.QUEUED, overdue=45)
        submitted = self.make_state(
            S.SUBMITTED, overdue=45, poll_count=3, provider_task_id="t1"
        )
        running = self.make_state(
            S.RUNNING, overdue=100, poll_count=7, provider_task_id="t2"
        )
        ingesting = self.make_state(S.INGESTING, overdue=31)
        healthy = self.make_state(S.RUNNING, overdue=5, provider_task_id="t3")
        waiting = self.create()  # in the fair queue: the dispatcher's, not a re-drive
        done = self.make_state(S.SUCCEEDED, overdue=1000)

        plan = generation_sweep()
        self.assertEqual(plan.submit, [queued.pk])
        self.assertEqual(
            sorted(plan.poll), sorted([(submitted.pk, 3), (running.pk, 7)])
        )
        self.assertEqual(plan.ingest, [ingesting.pk])
        self.assertEqual(plan.dispatch, ["scripted:env"])
        for row in (healthy, waiting, done):
            self.assertNotIn(
                row.pk, plan.submit + plan.ingest + [pk for pk, _ in plan.poll]
            )
        # Re-armed: the next sweep leaves them alone until they are overdue again.
        self.assertEqual(generation_sweep().redriven, 0)

    def test_a_redriven_poll_continues_the_chain(self) -> None:
        ScriptedBackend.polls = [ready()]
        generation = self.create()
        self.dispatch(generation)
        generation_submit(generation_id=generation.pk)
        # The worker holding the scheduled poll was SIGKILLed: nothing will come.
        Generation.objects.filter(pk=generation.pk).update(
            due_at=timezone.now() - timedelta(seconds=60)
        )
        plan = generation_sweep()
        self.assertEqual(plan.poll, [(generation.pk, 0)])
        nxt = generation_poll(generation_id=generation.pk, seq=0)
        self.assertEqual(nxt.action, "ingest")
        generation_ingest(generation_id=generation.pk)
        self.assertEqual(self.reload(generation).state, S.SUCCEEDED)
        # The original message, redelivered by Redis much later, does nothing.
        self.assertEqual(
            generation_poll(generation_id=generation.pk, seq=0).action, "none"
        )
        self.assertEqual(ScriptedBackend.calls["submit"], 1)

    def test_deadlines_expire_work(self) -> None:
        old_submit = self.make_state(S.RUNNING, overdue=1, provider_task_id="t")
        Generation.objects.filter(pk=old_submit.pk).update(
            submitted_at=timezone.now() - timedelta(seconds=901)
        )
        old_queue = self.create()
        Generation.objects.filter(pk=old_queue.pk).update(
            queued_at=timezone.now() - timedelta(days=2)
        )
        with self.captureOnCommitCallbacks(execute=True):
            plan = generation_sweep()
        self.assertEqual(sorted(plan.expired), sorted([old_submit.pk, old_queue.pk]))
        self.assertEqual(self.reload(old_submit).state, S.EXPIRED)
        self.assertEqual(self.reload(old_queue).error_class, "timeout")

    def test_the_sweep_task_enqueues_the_plan(self) -> None:
        queued = self.make_state(S.QUEUED, overdue=45)
        running = self.make_state(
            S.RUNNING, overdue=45, poll_count=2, provider_task_id="t"
        )
        with (
            mock.patch.object(tasks.generation_submit, "delay") as submit,
            mock.patch.object(tasks.generation_poll, "delay") as poll,
        ):
            summary = tasks.generation_sweep.run()
        submit.assert_called_once_with(queued.pk)
        poll.assert_called_once_with(running.pk, 2)
        self.assertEqual(summary["redriven"], 2)


class TaskWiringTests(EngineTestCase):
    def test_follow_schedules_with_countdowns_and_dispatches_freed_slots_inline(
        self,
    ) -> None:
        with (
            mock.patch.object(tasks.generation_poll, "apply_async") as poll,
            mock.patch.object(tasks, "_dispatch") as dispatch,
        ):
            tasks.follow(5, Next("poll", countdown=1.5, poll_seq=3, wake=("bfl:env",)))
        poll.assert_called_once_with((5, 3), countdown=1.5)
        dispatch.assert_called_once_with("bfl:env", inline=1)

    @override_settings(ENGINE_CONCURRENCY={"scripted": 2})
    def test_a_freed_slot_submits_the_next_generation_in_the_same_task(self) -> None:
        one, two, three = self.create(), self.create(), self.create()
        with mock.patch.object(tasks.generation_submit, "delay") as submit_task:
            tasks._dispatch("scripted:env")
        self.assertEqual(
            [c.args for c in submit_task.call_args_list], [(one.pk,), (two.pk,)]
        )
        for generation in (one, two):
            generation_submit(generation_id=generation.pk)
        with (
            mock.patch.object(tasks.generation_submit, "delay") as submit_task,
            mock.patch.object(tasks.generation_ingest, "apply_async") as ingest,
            mock.patch.object(tasks.generation_poll, "apply_async") as poll,
        ):
            tasks.generation_poll.run(one.pk, 0)  # ready: frees a slot
        ingest.assert_called_once_with((one.pk,), countdown=0.0)
        submit_task.assert_not_called()
        self.assertEqual(self.reload(three).state, S.SUBMITTED)  # submitted inline
        self.assertEqual(poll.call_args.args[0], (three.pk, 0))

    def test_an_inline_submit_that_crashes_is_handed_to_a_task(self) -> None:
        generation = self.create()
        with (
            mock.patch.object(
                engine_submit, "generation_submit", side_effect=RuntimeError("boom")
            ),
            mock.patch.object(tasks.generation_submit, "delay") as submit_task,
            self.assertLogs("generation.tasks", "ERROR"),
        ):
            tasks._dispatch("scripted:env", inline=1)
        submit_task.assert_called_once_with(generation.pk)

    def test_routes_send_ingest_to_the_cpu_queue(self) -> None:
        from studio.celery import app

        router = app.amqp.router
        self.assertEqual(
            router.route({}, "generation.tasks.generation_ingest")["queue"].name,
            "ingest",
        )
        for name in (
            "generation_submit",
            "generation_poll",
            "generation_dispatch",
            "generation_sweep",
        ):
            self.assertEqual(
                router.route({}, f"generation.tasks.{name}")["queue"].name, "dispatch"
            )

    def test_tasks_are_late_acked_and_rejected_when_the_worker_is_lost(self) -> None:
        for task in (
            tasks.generation_submit,
            tasks.generation_poll,
            tasks.generation_ingest,
            tasks.generation_dispatch,
        ):
            self.assertTrue(task.acks_late)
            self.assertTrue(task.reject_on_worker_lost)

    def test_a_submit_answer_without_a_poll_url_still_polls(self) -> None:
        ScriptedBackend.submits = [Submission(task_id="abc")]
        row = self.run_to_end(self.create())
        self.assertEqual(
            (row.state, row.poll_url, row.provider_task_id), (S.SUCCEEDED, "", "abc")
        )

    def test_pending_polls_learn_the_duration(self) -> None:
        ScriptedBackend.polls = [pending(), pending(), ready()]
        row = self.run_to_end(self.create())
        self.assertEqual(row.state, S.SUCCEEDED)
        self.assertIsNotNone(engine.duration_estimate("scripted", "m"))
