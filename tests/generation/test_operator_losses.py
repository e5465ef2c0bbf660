"""Paid for nothing (issue 10, items 3 and 5): a submit whose answer was lost is recorded as
uncertain, the resubmission shows on the operator page as a possible duplicate with its cost, and
so does a paid image that expired at the provider."""

from __future__ import annotations

import time
from decimal import Decimal

from django.test import override_settings
from django.urls import reverse

from generation import losses
from generation.models import Generation, GenerationState
from studio.models import Workspace
from tests.generation.test_generate_command import CommandTestCase
from tests.generation.test_operator_view import OperatorTestCase

S = GenerationState


class UncertainSubmitTests(CommandTestCase):
    def test_a_submit_whose_answer_was_lost_is_recorded_and_counted(self) -> None:
        # The fake answers the first submit after 1.5 s but creates its task at once; the
        # client gives up after 0.5 s: the request was sent, the answer lost.
        self.fake.inject("slow", endpoint="submit", times=1, seconds=1.5)
        with override_settings(BFL_READ_TIMEOUT="0.5"):
            code, _out, err = self.generate(
                "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
            )
        self.assertEqual(code, 0, err)
        generation = Generation.objects.get()
        self.assertEqual(generation.state, S.SUCCEEDED)
        uncertain = generation.provider_details["uncertain_submits"]
        self.assertEqual(len(uncertain), 1)
        self.assertIn("timeout", uncertain[0]["error"])
        # BFL offers no way to find the lost task: it was paid for twice (the slow request
        # makes its task once its sleep ends).
        self.assertEqual(self.fake.counts["submit_requests"], 2)
        deadline = time.monotonic() + 5
        while self.fake.counts["submissions"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.fake.counts["submissions"], 2)
        found = losses.month_losses(
            Workspace.objects.get(pk=generation.workspace_id),
            since=generation.queued_at,
        )
        self.assertEqual(found["bfl"].duplicate_submissions, 1)
        self.assertEqual(found["bfl"].duplicate_cost, generation.estimated_cost)

    def test_a_submit_that_never_connected_is_not_uncertain(self) -> None:
        self.fake.inject("server_error", endpoint="submit", times=1)
        code, _out, err = self.generate(
            "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 0, err)
        self.assertNotIn("uncertain_submits", Generation.objects.get().provider_details)


class OperatorLossesTests(OperatorTestCase):
    url = reverse("generation:operator")

    def test_the_page_shows_duplicates_and_lost_images_with_their_cost(self) -> None:
        self.generation(
            "bfl",
            S.SUCCEEDED,
            estimated_cost=Decimal("0.03"),
            provider_details={"uncertain_submits": [{"at": "x", "attempt": 1}]},
        )
        self.generation("bfl", S.EXPIRED, actual_cost=Decimal("0.045"))
        self.generation("bfl", S.EXPIRED)  # never paid: nothing lost
        self.client.force_login(self.alice)
        response = self.client.get(self.url)
        self.assertContains(response, 'id="paid-for-nothing"')
        row = response.content.decode().split('id="losses-bfl"', 1)[1].split("</tr>")[0]
        self.assertEqual(
            [cell.split(">")[-1] for cell in row.split("</td>")[1:5]],
            ["1", "$0.0300", "1", "$0.0450"],
        )

    def test_nothing_lost_says_so(self) -> None:
        self.generation("bfl", S.SUCCEEDED)
        self.client.force_login(self.alice)
        response = self.client.get(self.url)
        self.assertContains(
            response, "No duplicate submissions and no paid image lost."
        )
