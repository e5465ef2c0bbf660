"""api.waiting.wait_until on the real Redis: the wake-up paths of `Prefer: wait`, including the
ones a missed message takes (issue 13's "first call took the full 30 s" report)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.test import SimpleTestCase, override_settings

from api import waiting
from generation import caps


class WaitUntilTests(SimpleTestCase):
    def setUp(self) -> None:
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=f"wait-{uuid.uuid4().hex[:8]}"
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        self.generation_id = 424242

    def run_wait(self, is_terminal, seconds: float = 10.0) -> tuple[bool, float]:
        started = time.monotonic()
        # On a thread of its own: an earlier test (Schemathesis, Playwright) may have left an
        # event loop running on this one, where asyncio.run() refuses to start.
        with ThreadPoolExecutor(max_workers=1) as pool:
            done = pool.submit(
                asyncio.run,
                waiting.wait_until(self.generation_id, seconds, is_terminal),
            ).result()
        return done, time.monotonic() - started

    @override_settings(API_WAIT_RECHECK=30)
    def test_a_finish_right_after_the_first_read_is_heard_at_once(self) -> None:
        # The generation finishes (and publishes) just after the waiter's first read: only the
        # subscription, confirmed before that read, can wake it before the 30 s recheck.
        reads = []

        async def is_terminal() -> bool:
            reads.append(time.monotonic())
            if len(reads) == 1:
                caps.redis_client().publish(
                    waiting.channel(self.generation_id), "succeeded"
                )
                return False
            return True

        done, elapsed = self.run_wait(is_terminal)
        self.assertTrue(done)
        self.assertLess(elapsed, 2, elapsed)
        self.assertEqual(len(reads), 2)

    @override_settings(API_WAIT_RECHECK=0.5)
    def test_a_finish_that_publishes_nothing_is_seen_by_the_recheck(self) -> None:
        finish_at = time.monotonic() + 1.0

        async def is_terminal() -> bool:
            return time.monotonic() >= finish_at

        done, elapsed = self.run_wait(is_terminal)
        self.assertTrue(done)
        self.assertLess(elapsed, 2.0, elapsed)

    @override_settings(API_WAIT_RECHECK=0.5, REDIS_URL="redis://127.0.0.1:1/0")
    def test_an_unreachable_redis_still_answers_by_reading_the_row(self) -> None:
        finish_at = time.monotonic() + 1.0

        async def is_terminal() -> bool:
            return time.monotonic() >= finish_at

        done, elapsed = self.run_wait(is_terminal)
        self.assertTrue(done)
        self.assertLess(elapsed, 3.0, elapsed)

        async def never() -> bool:
            return False

        done, elapsed = self.run_wait(never, seconds=1.5)
        self.assertFalse(done)
        self.assertLess(elapsed, 2.5, elapsed)
