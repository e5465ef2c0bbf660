"""The first-poll estimate learns the provider, not the worker (issue 10, item 2).

After a stall every poll runs late; the old estimate learned "ready 44 s after submit" from such
polls, then made every next first poll wait that long too and never came back down. Here the
engine's own steps run on a simulated clock against a provider that takes 2 s: a stale 40 s
estimate must come back near 2 s within 50 generations, with and without the provider reporting
its own processing time, and late polls must teach nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

from django.utils import timezone

from generation.backends.base import PollResult, ProviderState
from generation.engine import policy as engine
from generation.engine.ingest import generation_ingest
from generation.engine.poll import generation_poll
from generation.engine.submit import generation_submit
from generation.models import Generation, GenerationState
from tests.generation.test_engine_state import EngineTestCase, ScriptedBackend, ready

S = GenerationState
TRUE_DURATION = 2.0


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance_to(self, when: datetime) -> None:
        self.at = max(self.at, when)


class TimedBackend(ScriptedBackend):
    """A provider whose tasks take TRUE_DURATION seconds on the simulated clock."""

    clock: Clock
    report_duration = False
    submitted: dict[str, datetime] = {}

    def submit(self, request):  # type: ignore[no-untyped-def]
        submission = super().submit(request)
        self.submitted[submission.task_id] = self.clock.now()
        return submission

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        self.calls["poll"] += 1
        age = (self.clock.now() - self.submitted[task_id]).total_seconds()
        if age < TRUE_DURATION:
            return PollResult(ProviderState.PENDING)
        result = ready()
        if self.report_duration:
            return PollResult(
                ProviderState.READY,
                result_url=result.result_url,
                cost=result.cost,
                duration=TRUE_DURATION,
            )
        return result


class EstimateTests(EngineTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        TimedBackend.clock = self.clock
        TimedBackend.submitted = {}
        TimedBackend.report_duration = False
        patcher = mock.patch.dict(
            "generation.backends.registry.BACKENDS", {"scripted": TimedBackend}
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        clock_patch = mock.patch.object(timezone, "now", self.clock.now)
        clock_patch.start()
        self.addCleanup(clock_patch.stop)

    def estimate(self) -> float:
        return engine.duration_estimate("scripted", "m") or 0.0

    def run_one(self, *, late_by: float = 0.0) -> Generation:
        """One generation, each poll run at its due time (plus `late_by` seconds)."""
        generation = self.create()
        self.dispatch(generation)
        nxt = generation_submit(generation_id=generation.pk)
        for _ in range(100):
            if nxt.action != "poll":
                break
            due = Generation.objects.values_list("due_at", flat=True).get(
                pk=generation.pk
            )
            self.clock.advance_to(due + timedelta(seconds=late_by))
            nxt = generation_poll(generation_id=generation.pk, seq=nxt.poll_seq)
        if nxt.action == "ingest":
            generation_ingest(generation_id=generation.pk)
        self.clock.advance_to(self.clock.now() + timedelta(seconds=0.05))
        return self.reload(generation)

    def test_a_stale_40_s_estimate_comes_back_within_50_generations(self) -> None:
        engine.record_duration("scripted", "m", 40.0)
        self.assertEqual(self.estimate(), 40.0)
        history = []
        for _ in range(50):
            self.assertEqual(self.run_one().state, S.SUCCEEDED)
            history.append(self.estimate())
        # Polls are on time, the provider reports nothing itself: first polls "ready" bound the
        # estimate down, then pending-then-ready brackets measure it.
        self.assertLess(history[-1], 2.6, history)
        self.assertGreater(history[-1], 1.4, history)

    def test_with_the_providers_own_duration_it_comes_back_faster(self) -> None:
        TimedBackend.report_duration = True
        engine.record_duration("scripted", "m", 40.0)
        for _ in range(15):
            self.run_one(
                late_by=30.0
            )  # even with every poll late: the provider's figure counts
        self.assertAlmostEqual(self.estimate(), TRUE_DURATION, delta=0.5)

    def test_late_polls_teach_nothing(self) -> None:
        engine.record_duration("scripted", "m", 3.0)
        for _ in range(5):
            self.assertEqual(self.run_one(late_by=40.0).state, S.SUCCEEDED)
        self.assertEqual(self.estimate(), 3.0)

    def test_the_estimate_is_bounded(self) -> None:
        engine.record_duration("scripted", "m", 1e9)
        self.assertEqual(self.estimate(), 300.0)
        engine.record_upper_bound("scripted", "m", 0.0001)
        self.assertGreaterEqual(self.estimate(), 0.1)
