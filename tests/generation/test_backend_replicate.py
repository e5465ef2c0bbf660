"""Contract tests of the Replicate backend against the fake predictions API
(tests/fakes/replicate_server.py), over real HTTP on 127.0.0.1. No database."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from decimal import Decimal
from unittest import mock

from django.test import SimpleTestCase, override_settings
from PIL import Image

from generation import accounts
from generation.backends.base import (
    BackendConfig,
    BackendError,
    ErrorClass,
    GenerationRequest,
    PollResult,
    ProviderState,
    ReferenceInput,
    RuleViolation,
    Submission,
)
from generation.backends.replicate import backend as replicate_backend
from generation.backends.replicate import contract as replicate_contract
from generation.backends.replicate.backend import ReplicateBackend
from tests.fakes.fal_server import WebhookReceiver, make_image
from tests.fakes.replicate_server import FakeReplicate

SERVED = {
    "flux-2-pro": "black-forest-labs/flux-2-pro",
    "flux-2-max": "black-forest-labs/flux-2-max",
    "flux-2-flex": "black-forest-labs/flux-2-flex",
    "flux-2-dev": "black-forest-labs/flux-2-dev",
    "flux-2-klein-4b": "black-forest-labs/flux-2-klein-4b",
    "flux-2-klein-9b": "black-forest-labs/flux-2-klein-9b",
}
KLEIN = ("flux-2-klein-4b", "flux-2-klein-9b")


def ref(width: int = 640, height: int = 480, role: str = "product") -> ReferenceInput:
    return ReferenceInput(role, make_image(width, height), "image/png", width, height)


def req(model: str = "flux-2-pro", **kw: object) -> GenerationRequest:
    square = model in KLEIN
    fields: dict[str, object] = {
        "prompt": "a red kettle on a marble table",
        "width": 1024,
        "height": 1024 if square else 768,
    }
    fields.update(kw)
    return GenerationRequest(model=model, **fields)  # type: ignore[arg-type]


class ReplicateTestCase(SimpleTestCase):
    fake: FakeReplicate

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeReplicate(slow_seconds=1.0)
        cls.fake.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        self.fake.reset()
        self.fake.latency = 0.0
        self.fake.queue_latency = 0.0
        self.fake.url_ttl = 3600.0
        replicate_backend._secret_cache.clear()
        self.backend = ReplicateBackend(self.fake.config(read_timeout="0.5"))

    def run_to_end(self, request: GenerationRequest) -> tuple[Submission, PollResult]:
        submission = self.backend.submit(request)
        deadline = time.monotonic() + 5
        while True:
            result = self.backend.poll(
                task_id=submission.task_id, poll_url=submission.poll_url
            )
            if result.state is not ProviderState.PENDING or time.monotonic() > deadline:
                return submission, result
            time.sleep(0.02)

    def assert_error(
        self, raised: BackendError, error_class: ErrorClass, retryable: bool
    ) -> None:
        self.assertIs(raised.error_class, error_class, raised)
        self.assertIs(raised.retryable, retryable, raised)


class ModelMappingTests(ReplicateTestCase):
    def test_it_maps_each_studio_model_it_serves_to_a_black_forest_labs_model(
        self,
    ) -> None:
        self.assertIs(replicate_backend.BACKEND_CLASS, ReplicateBackend)
        models = self.backend.capabilities().models
        self.assertEqual(
            {name: spec.provider_model for name, spec in models.items()}, SERVED
        )

    def test_it_names_the_models_it_cannot_serve(self) -> None:
        for model in ("flux-2-pro-preview", "flux-2-klein-9b-preview"):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.validate(req(model))
            self.assertEqual(caught.exception.rule, "model")
            self.assertIn(f"cannot serve {model}", caught.exception.message)

    def test_every_model_generates_with_and_without_references(self) -> None:
        for model in SERVED:
            for refs in ((), (ref(), ref(300, 500, "style"))):
                with self.subTest(model=model, references=len(refs)):
                    self.fake.reset()
                    request = req(model, references=refs, seed=11)
                    submission, result = self.run_to_end(request)
                    self.assertEqual(self.fake.task(submission.task_id).model, model)
                    self.assertIs(result.state, ProviderState.READY, result.error)
                    data, content_type = self.backend.fetch(result)
                    with Image.open(io.BytesIO(data)) as image:
                        # The fake rounds like Replicate: the size shows the request was exact.
                        self.assertEqual(image.size, (request.width, request.height))
                    self.assertTrue(content_type.startswith("image/"))

    def test_it_uses_each_models_own_input_names(self) -> None:
        for model, field in (
            ("flux-2-pro", "input_images"),
            ("flux-2-dev", "input_images"),
            ("flux-2-klein-4b", "images"),
        ):
            with self.subTest(model=model):
                self.fake.reset()
                self.backend.submit(req(model, references=(ref(),), seed=5))
                body = self.fake.bodies[0]
                self.assertEqual(len(body[field]), 1)
                self.assertTrue(body[field][0].startswith("data:image/png;base64,"))
                self.assertEqual(self.fake.validate(model, body), [])

    def test_it_asks_for_a_custom_size_except_on_klein(self) -> None:
        self.backend.submit(req("flux-2-max", width=1008, height=752))
        self.backend.submit(req("flux-2-klein-9b"))
        pro, klein = self.fake.bodies
        self.assertEqual(
            (pro["aspect_ratio"], pro["width"], pro["height"]), ("custom", 1008, 752)
        )
        self.assertEqual(klein["aspect_ratio"], "1:1")
        self.assertNotIn("width", klein)

    def test_it_reads_a_string_or_a_list_output(self) -> None:
        _, pro = self.run_to_end(req("flux-2-pro"))
        _, klein = self.run_to_end(req("flux-2-klein-4b"))
        self.assertIsInstance(pro.raw["output"], str)
        self.assertIsInstance(klein.raw["output"], list)
        self.assertEqual(klein.result_url, klein.raw["output"][0])

    def test_it_maps_studio_parameters_onto_replicate_fields(self) -> None:
        params = {
            "steps": 20,
            "guidance": 3.5,
            "prompt_upsampling": False,
            "safety_tolerance": 5,
            "output_format": "jpeg",
        }
        self.backend.submit(req("flux-2-flex", params=params))
        body = self.fake.bodies[0]
        self.assertEqual(
            (body["steps"], body["guidance"], body["prompt_upsampling"]),
            (20, 3.5, False),
        )
        self.assertEqual((body["safety_tolerance"], body["output_format"]), (5, "jpg"))
        self.assertEqual(self.fake.validate("flux-2-flex", body), [])

    def test_it_authenticates_with_a_bearer_token_and_never_waits(self) -> None:
        self.backend.submit(
            req(webhook_url="https://studio.example.com/hooks/replicate")
        )
        headers = self.fake.submit_headers[0]
        self.assertEqual(headers["authorization"], f"Bearer {self.fake.api_key}")
        self.assertNotIn("prefer", headers)
        self.assertEqual(self.fake.counts["prefer_wait"], 0)

    def test_it_reads_the_token_and_url_from_the_settings(self) -> None:
        with override_settings(
            REPLICATE_API_TOKEN=self.fake.api_key,
            REPLICATE_API_URL=f"{self.fake.base_url}/v1",
            REPLICATE_ALLOWED_HOSTS=self.fake.allowed_hosts,
        ):
            backend = ReplicateBackend(accounts.settings_config("replicate"))
        self.assertTrue(backend.is_configured())
        self.assertEqual(backend.base_url, self.fake.base_url)
        backend.submit(req())
        self.assertFalse(ReplicateBackend(BackendConfig()).is_configured())
        self.assertEqual(
            ReplicateBackend(BackendConfig()).base_url, "https://api.replicate.com"
        )


class PredictionTests(ReplicateTestCase):
    def test_it_polls_urls_get_and_maps_starting_and_processing_to_pending(
        self,
    ) -> None:
        self.fake.latency, self.fake.queue_latency = 60.0, 30.0
        submission = self.backend.submit(req())
        self.assertEqual(
            submission.poll_url,
            f"{self.fake.base_url}/v1/predictions/{submission.task_id}",
        )
        # The references' data URIs are not kept.
        self.assertNotIn("input", submission.raw)
        first = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertEqual(
            (first.state, first.raw["status"]), (ProviderState.PENDING, "starting")
        )
        self.fake.task(submission.task_id).queued_until = time.monotonic()
        second = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertEqual(
            (second.state, second.raw["status"]), (ProviderState.PENDING, "processing")
        )
        # From the model's progress bar in the logs.
        self.assertEqual(second.progress, 0.5)
        self.fake.finish(submission.task_id)
        third = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(third.state, ProviderState.READY)

    def outcome(self, kind: str, **options: object) -> BackendError:
        self.fake.inject(kind, endpoint="submit", **options)
        _, result = self.run_to_end(req())
        self.assertIs(result.state, ProviderState.FAILED)
        return result.error

    def test_a_failed_prediction_is_a_retryable_provider_error_with_its_message(
        self,
    ) -> None:
        error = self.outcome("failed", message="CUDA out of memory")
        self.assert_error(error, ErrorClass.PROVIDER_ERROR, True)
        self.assertIn("CUDA out of memory", error.message)

    def test_an_nsfw_failure_is_moderated(self) -> None:
        self.assert_error(self.outcome("nsfw"), ErrorClass.MODERATED, False)

    def test_an_aborted_prediction_may_be_retried(self) -> None:
        self.assert_error(self.outcome("aborted"), ErrorClass.PROVIDER_ERROR, True)

    def test_a_deleted_output_is_expired(self) -> None:
        self.assert_error(self.outcome("data_removed"), ErrorClass.EXPIRED, False)

    def test_a_failure_can_arrive_while_polling(self) -> None:
        self.fake.latency = 60.0
        submission = self.backend.submit(req())
        self.fake.inject("failed", endpoint="poll")
        self.fake.finish(submission.task_id)
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.error.error_class, ErrorClass.PROVIDER_ERROR)

    def test_an_unknown_prediction_is_not_found(self) -> None:
        result = self.backend.poll(
            task_id="nope", poll_url=f"{self.fake.base_url}/v1/predictions/nope"
        )
        self.assertIs(result.error.error_class, ErrorClass.NOT_FOUND)

    def test_it_refuses_to_send_the_token_to_a_foreign_url(self) -> None:
        with self.assertRaises(BackendError) as caught:
            self.backend.poll(
                task_id="x", poll_url="https://evil.example.com/v1/predictions/x"
            )
        self.assertTrue(caught.exception.details["refused"])
        self.assertEqual(self.fake.counts["polls"], 0)


class HttpFaultTests(ReplicateTestCase):
    def submit_error(self, kind: str, **options: object) -> BackendError:
        self.fake.inject(kind, endpoint="submit", **options)
        with self.assertRaises(BackendError) as caught:
            self.backend.submit(req())
        return caught.exception

    def test_a_429_is_rate_limited_with_retry_after(self) -> None:
        error = self.submit_error("rate_limit", retry_after=12)
        self.assert_error(error, ErrorClass.RATE_LIMITED, True)
        self.assertEqual(error.retry_after, 12)

    def test_a_429_without_the_header_takes_the_wait_from_the_detail(self) -> None:
        error = self.submit_error("rate_limit", retry_after=30, header="none")
        self.assertEqual(error.retry_after, 30)
        self.assertIn("throttled", error.message)

    def test_5xx_are_retryable_provider_errors(self) -> None:
        self.assert_error(
            self.submit_error("server_error"), ErrorClass.PROVIDER_ERROR, True
        )
        self.assert_error(
            self.submit_error("unavailable"), ErrorClass.PROVIDER_ERROR, True
        )

    def test_auth_and_billing_failures_are_not_retried(self) -> None:
        self.assert_error(self.submit_error("unauthorized"), ErrorClass.AUTH, False)
        error = self.submit_error("payment_required")
        self.assert_error(error, ErrorClass.QUOTA, False)
        self.assertIn("insufficient credit", error.message)

    def test_a_wrong_token_is_an_auth_error(self) -> None:
        config = BackendConfig(
            "r8_wrong", self.fake.base_url, {"allowed_hosts": self.fake.allowed_hosts}
        )
        with self.assertRaises(BackendError) as caught:
            ReplicateBackend(config).submit(req())
        self.assert_error(caught.exception, ErrorClass.AUTH, False)

    def test_a_422_names_the_invalid_field(self) -> None:
        error = self.submit_error("validation")
        self.assert_error(error, ErrorClass.INVALID_REQUEST, False)
        self.assertIn("input.prompt", error.message)

    def test_the_fakes_schema_check_reaches_the_client_as_a_422(self) -> None:
        wrong = dataclasses.replace(
            replicate_contract.MODELS["flux-2-klein-4b"], images_field="input_images"
        )
        with (
            mock.patch.dict(replicate_contract.MODELS, {"flux-2-klein-4b": wrong}),
            self.assertRaises(BackendError) as caught,
        ):
            self.backend.submit(req("flux-2-klein-4b", references=(ref(),)))
        self.assert_error(caught.exception, ErrorClass.INVALID_REQUEST, False)
        self.assertIn(
            "input.input_images: Additional property", caught.exception.message
        )

    def test_network_faults(self) -> None:
        error = self.submit_error("drop")
        self.assert_error(error, ErrorClass.NETWORK, True)
        self.assertTrue(error.details["maybe_submitted"])
        self.assert_error(
            self.submit_error("slow", seconds=1.0), ErrorClass.TIMEOUT, True
        )
        self.assert_error(self.submit_error("malformed"), ErrorClass.BAD_RESULT, True)

    def test_faults_while_polling_raise_so_the_engine_polls_again(self) -> None:
        submission = self.backend.submit(req())
        for kind, error_class in (
            ("rate_limit", ErrorClass.RATE_LIMITED),
            ("unavailable", ErrorClass.PROVIDER_ERROR),
            ("drop", ErrorClass.NETWORK),
            ("malformed", ErrorClass.BAD_RESULT),
        ):
            with self.subTest(kind=kind):
                self.fake.inject(kind, endpoint="poll")
                with self.assertRaises(BackendError) as caught:
                    self.backend.poll(
                        task_id=submission.task_id, poll_url=submission.poll_url
                    )
                self.assert_error(caught.exception, error_class, True)
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.state, ProviderState.READY)


class CancelTests(ReplicateTestCase):
    def test_it_cancels_a_running_prediction(self) -> None:
        self.fake.latency = 60.0
        submission = self.backend.submit(req())
        self.assertTrue(
            self.backend.cancel(
                task_id=submission.task_id, poll_url=submission.poll_url
            )
        )
        self.assertEqual(self.fake.counts["cancels"], 1)
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.state, ProviderState.FAILED)
        self.assertTrue(result.error.details["canceled"])
        self.assertFalse(result.error.retryable)

    def test_a_finished_or_unknown_prediction_cannot_be_canceled(self) -> None:
        submission, _ = self.run_to_end(req())
        self.assertFalse(
            self.backend.cancel(
                task_id=submission.task_id, poll_url=submission.poll_url
            )
        )
        self.assertFalse(self.backend.cancel(task_id="nope", poll_url=None))

    def test_capabilities_say_it_can_cancel_and_call_back(self) -> None:
        caps = self.backend.capabilities()
        self.assertTrue(caps.can_cancel and caps.calls_back and not caps.synchronous)


class FetchTests(ReplicateTestCase):
    def ready(self) -> PollResult:
        _, result = self.run_to_end(req())
        self.assertIs(result.state, ProviderState.READY)
        return result

    def fetch_error(
        self, result: PollResult, backend: ReplicateBackend | None = None
    ) -> BackendError:
        with self.assertRaises(BackendError) as caught:
            (backend or self.backend).fetch(result)
        return caught.exception

    def test_it_downloads_from_the_delivery_host(self) -> None:
        result = self.ready()
        self.assertTrue(
            result.result_url.startswith(f"http://localhost:{self.fake.port}/xezq/")
        )
        _, content_type = self.backend.fetch(result)
        # Replicate's default output format.
        self.assertEqual(content_type, "image/webp")

    def test_an_expired_url_is_expired(self) -> None:
        result = self.ready()
        self.fake.inject("expired")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.EXPIRED)

    def test_after_an_hour_the_file_and_output_are_gone(self) -> None:
        self.fake.url_ttl = 0.0
        submission = self.backend.submit(req())
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.error.error_class, ErrorClass.EXPIRED)

    def test_a_page_that_is_not_an_image_is_a_bad_result(self) -> None:
        result = self.ready()
        self.fake.inject("wrong_content_type")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.BAD_RESULT)
        self.fake.inject("malformed", endpoint="delivery")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.BAD_RESULT)

    def test_it_does_not_follow_a_redirect_to_a_private_host(self) -> None:
        result = self.ready()
        self.fake.inject("redirect", location="http://10.0.0.1/secret.png")
        self.assertTrue(self.fetch_error(result).details["refused"])

    def test_it_only_downloads_from_allowed_hosts(self) -> None:
        result = self.ready()
        strict = ReplicateBackend(
            BackendConfig(
                self.fake.api_key, self.fake.base_url, {"allowed_hosts": "127.0.0.1"}
            )
        )
        self.assertTrue(self.fetch_error(result, strict).details["refused"])
        self.assertEqual(self.fake.counts["deliveries"], 0)
        policy = ReplicateBackend(BackendConfig("t")).delivery_policy
        self.assertTrue(policy.allows_host("replicate.delivery"))
        self.assertTrue(policy.allows_host("pbxt.replicate.delivery"))
        self.assertFalse(policy.allows_host("replicate.delivery.evil.example"))


class PricingTests(ReplicateTestCase):
    def test_it_estimates_from_the_bfl_figures_until_replicate_publishes_its_own(
        self,
    ) -> None:
        one = ref(1024, 1024)
        cases = [
            (
                req("flux-2-pro", height=1024),
                "0.03",
            ),  # ≈ $0.03 for 1 MP T2I (docs/providers.md §3.6)
            (
                req("flux-2-pro", height=1024, references=(one,)),
                "0.045",
            ),  # $0.015 per input MP
            (req("flux-2-max", height=1024), "0.07"),
            (req("flux-2-flex", height=1024, references=(one,)), "0.10"),
            (req("flux-2-dev", height=1024), "0.012"),
            (
                req("flux-2-klein-4b", references=(one, one)),
                "0.016",
            ),  # ≈ $0.001 per input MP
            (req("flux-2-klein-9b"), "0.015"),
        ]
        for request, usd in cases:
            with self.subTest(model=request.model, refs=len(request.references)):
                self.assertEqual(self.backend.estimate_cost(request), Decimal(usd))

    def test_no_cost_is_reported_per_prediction(self) -> None:
        submission, result = self.run_to_end(req())
        self.assertIsNone(submission.cost)
        self.assertIsNone(result.cost)


class RuleTests(ReplicateTestCase):
    def violation(self, request: GenerationRequest) -> RuleViolation:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(request)
        self.assertEqual(self.fake.counts["submit_requests"], 0)  # nothing was sent
        return caught.exception

    def test_each_model_limits_its_references(self) -> None:
        for model, limit in (
            ("flux-2-pro", 8),
            ("flux-2-max", 8),
            ("flux-2-flex", 10),
            ("flux-2-dev", 4),
            ("flux-2-klein-4b", 5),
        ):
            with self.subTest(model=model):
                self.backend.validate(
                    req(model, references=tuple(ref(64, 64) for _ in range(limit)))
                )
                error = self.violation(
                    req(model, references=tuple(ref(64, 64) for _ in range(limit + 1)))
                )
                self.assertEqual(error.rule, "max_references")
                self.assertIn(f"at most {limit}", error.message)

    def test_it_refuses_a_size_replicate_would_round_and_says_why(self) -> None:
        error = self.violation(req("flux-2-pro", width=1000))
        self.assertEqual(error.rule, "dimension_step")
        self.assertIn("multiple of 32", error.message)
        self.assertIn("round", error.message)
        self.assertIn("992 or 1024", error.message)
        self.backend.validate(req("flux-2-max", width=1008))  # max rounds to 16
        self.assertEqual(
            self.violation(req("flux-2-pro", width=1008)).rule, "dimension_step"
        )
        self.assertEqual(
            self.violation(req("flux-2-flex", width=1040)).rule, "dimension_step"
        )

    def test_it_keeps_each_models_size_range(self) -> None:
        self.assertEqual(
            self.violation(req("flux-2-pro", width=224)).rule, "dimensions"
        )
        self.assertEqual(
            self.violation(req("flux-2-dev", width=1472)).rule, "dimensions"
        )
        self.backend.validate(req("flux-2-dev", width=1440, height=1440))
        self.backend.validate(req("flux-2-pro", width=2048, height=2048))

    def test_klein_only_takes_the_size_it_is_known_to_make_exactly(self) -> None:
        error = self.violation(req("flux-2-klein-4b", width=1024, height=768))
        self.assertEqual(error.rule, "dimensions")
        self.assertIn("1024×1024", error.message)
        self.backend.validate(req("flux-2-klein-4b"))

    def test_it_refuses_parameters_a_model_does_not_take_or_values_out_of_range(
        self,
    ) -> None:
        self.assertEqual(
            self.violation(req("flux-2-pro", params={"steps": 20})).rule, "params"
        )
        self.assertEqual(
            self.violation(req("flux-2-pro", params={"safety_tolerance": 6})).rule,
            "param_range",
        )
        self.assertEqual(
            self.violation(req("flux-2-flex", params={"guidance": 12})).rule,
            "param_range",
        )
        self.assertEqual(
            self.violation(req("flux-2-klein-4b", params={"safety_tolerance": 2})).rule,
            "params",
        )


class WebhookTests(ReplicateTestCase):
    def finished(self) -> str:
        submission, result = self.run_to_end(req())
        self.assertIs(result.state, ProviderState.READY)
        return submission.task_id

    def message(self, fault: str | None = None) -> tuple[bytes, dict[str, str]]:
        return self.fake.webhook_message(self.fake.task(self.finished()), fault)

    def parse(
        self, headers: dict[str, str], body: bytes, secret: str | None = None
    ) -> tuple[str, PollResult]:
        secret = self.fake.webhook_secret if secret is None else secret
        return self.backend.parse_webhook(headers=headers, body=body, secret=secret)

    def auth_error(
        self, headers: dict[str, str], body: bytes, secret: str | None = None
    ) -> BackendError:
        with self.assertRaises(BackendError) as caught:
            self.parse(headers, body, secret)
        self.assertIs(caught.exception.error_class, ErrorClass.AUTH)
        self.assertEqual(caught.exception.status_code, 401)
        return caught.exception

    def test_a_submit_with_a_webhook_gets_a_signed_completed_callback_that_verifies(
        self,
    ) -> None:
        with WebhookReceiver() as hooks:
            submission = self.backend.submit(req(webhook_url=hooks.url))
            [(headers, body)] = hooks.wait(1)
        task_id, result = self.parse(headers, body)
        self.assertEqual(task_id, submission.task_id)
        self.assertIs(result.state, ProviderState.READY)
        self.assertNotIn("input", result.raw)
        self.assertEqual(self.fake.counts["polls"], 0)  # no poll was needed

    def test_the_callback_is_asked_for_completed_events_only(self) -> None:
        with WebhookReceiver() as hooks:
            self.backend.submit(req(webhook_url=hooks.url))
            hooks.wait(1)
        task = self.fake.task(self.fake.task_ids[0])
        self.assertEqual(task.webhook_url, hooks.url)
        self.assertEqual(task.extra["webhook_events_filter"], ["completed"])

    def test_a_valid_signature_verifies(self) -> None:
        body, headers = self.message()
        task_id, result = self.parse(headers, body)
        self.assertIs(result.state, ProviderState.READY)
        self.assertEqual(task_id, json.loads(body)["id"])

    def test_any_of_several_signatures_may_match(self) -> None:
        body, headers = self.message()
        headers["webhook-signature"] = f"v1,bm90LWl0 {headers['webhook-signature']}"
        self.parse(headers, body)

    def test_a_tampered_body_is_refused(self) -> None:
        body, headers = self.message()
        self.auth_error(headers, body.replace(b'"succeeded"', b'"failed"'))

    def test_a_wrong_secret_is_refused(self) -> None:
        body, headers = self.message("bad_signature")
        self.auth_error(headers, body)
        body, headers = self.message()
        self.auth_error(headers, body, secret=self.fake.other_secret)

    def test_a_stale_or_future_timestamp_is_refused(self) -> None:
        body, headers = self.message("stale")
        self.assertIn("300 s", self.auth_error(headers, body).message)
        body = b'{"id": "x", "status": "succeeded"}'
        future = self.fake.sign_headers(body, timestamp=int(time.time()) + 600)
        self.auth_error(future, body)

    def test_missing_headers_are_refused(self) -> None:
        body, headers = self.message("unsigned")
        self.auth_error(headers, body)

    def test_without_a_secret_it_fetches_the_accounts_once(self) -> None:
        body, headers = self.message()
        for _ in range(2):
            self.assertIs(
                self.parse(headers, body, secret="")[1].state, ProviderState.READY
            )
        self.assertEqual(self.fake.counts["secret_requests"], 1)

    def test_a_configured_secret_is_used(self) -> None:
        backend = ReplicateBackend(
            self.fake.config(webhook_secret=self.fake.webhook_secret)
        )
        body, headers = self.message()
        backend.parse_webhook(headers=headers, body=body, secret="not-a-whsec-secret")
        self.assertEqual(self.fake.counts["secret_requests"], 0)

    def test_a_failed_prediction_callback_fails_with_the_right_class(self) -> None:
        self.fake.inject("nsfw", endpoint="submit")
        self.run_to_end(req())
        body, headers = self.fake.webhook_message(
            self.fake.task(self.fake.task_ids[0]), None
        )
        _, result = self.parse(headers, body)
        self.assertIs(result.error.error_class, ErrorClass.MODERATED)
