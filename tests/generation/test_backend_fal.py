"""Contract tests of the fal backend against the fake fal queue (tests/fakes/fal_server.py), over
real HTTP on 127.0.0.1. No database."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
from generation.backends.fal import backend as fal_backend
from generation.backends.fal import webhooks as fal_webhooks
from generation.backends.fal.backend import FalBackend
from generation.backends.fal.contract import data_uri
from generation.backends.fal.results import result_from_output
from tests.fakes.fal_server import FakeFal, WebhookReceiver, make_image

SERVED = {
    "flux-2-pro": "fal-ai/flux-2-pro",
    "flux-2-max": "fal-ai/flux-2-max",
    "flux-2-flex": "fal-ai/flux-2-flex",
    "flux-2-dev": "fal-ai/flux-2",
    "flux-2-klein-4b": "fal-ai/flux-2/klein/4b",
    "flux-2-klein-9b": "fal-ai/flux-2/klein/9b",
}


def ref(width: int = 640, height: int = 480, role: str = "product") -> ReferenceInput:
    return ReferenceInput(role, make_image(width, height), "image/png", width, height)


def req(model: str = "flux-2-pro", **kw: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "prompt": "a red kettle on a marble table",
        "width": 1024,
        "height": 768,
    }
    fields.update(kw)
    return GenerationRequest(model=model, **fields)  # type: ignore[arg-type]


class FalTestCase(SimpleTestCase):
    fake: FakeFal

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeFal(slow_seconds=1.0)
        cls.fake.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        self.fake.reset()
        self.fake.latency = 0.0
        self.fake.queue_latency = 0.0
        self.fake.omit_urls = False
        fal_webhooks.clear_jwks_cache()
        self.backend = FalBackend(self.fake.config(read_timeout="0.5"))

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


class ModelMappingTests(FalTestCase):
    def test_it_maps_each_studio_model_it_serves_to_its_fal_endpoint(self) -> None:
        self.assertIs(fal_backend.BACKEND_CLASS, FalBackend)
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

    def test_every_model_generates_text_to_image_and_edits_with_references(
        self,
    ) -> None:
        for model, endpoint in SERVED.items():
            for refs in ((), (ref(), ref(300, 500, "style"))):
                with self.subTest(model=model, references=len(refs)):
                    self.fake.reset()
                    submission, result = self.run_to_end(
                        req(model, references=refs, seed=7)
                    )
                    expected = f"{endpoint}/edit" if refs else endpoint
                    self.assertEqual(self.fake.task(submission.task_id).model, expected)
                    self.assertEqual(submission.raw["endpoint"], expected)
                    self.assertIs(result.state, ProviderState.READY, result.error)
                    self.assertEqual(result.seed, 7)
                    data, content_type = self.backend.fetch(result)
                    with Image.open(io.BytesIO(data)) as image:
                        self.assertEqual(image.size, (1024, 768))
                    self.assertTrue(content_type.startswith("image/"))
                    self.assertEqual(self.fake.counts["misrouted"], 0)

    def test_it_sends_the_exact_size_and_references_as_data_uris(self) -> None:
        self.backend.submit(req("flux-2-pro", references=(ref(),), seed=3))
        body = self.fake.bodies[0]
        self.assertEqual(body["image_size"], {"width": 1024, "height": 768})
        self.assertEqual(body["seed"], 3)
        self.assertEqual(len(body["image_urls"]), 1)
        self.assertTrue(body["image_urls"][0].startswith("data:image/png;base64,"))

    def test_it_maps_studio_parameters_onto_fal_fields(self) -> None:
        params = {
            "steps": 30,
            "guidance": 4.0,
            "prompt_upsampling": False,
            "safety_tolerance": 4,
            "output_format": "png",
        }
        self.backend.submit(req("flux-2-flex", params=params))
        body = self.fake.bodies[0]
        self.assertEqual(body["num_inference_steps"], 30)
        self.assertEqual(body["guidance_scale"], 4.0)
        self.assertIs(body["enable_prompt_expansion"], False)
        self.assertEqual(body["safety_tolerance"], "4")  # fal wants a string
        self.assertEqual(body["output_format"], "png")
        self.assertEqual(self.fake.validate("fal-ai/flux-2-flex", body), [])

    def test_it_authenticates_with_a_key_header(self) -> None:
        self.backend.submit(req())
        self.assertEqual(
            self.fake.submit_headers[0]["authorization"], f"Key {self.fake.api_key}"
        )

    def test_it_reads_the_key_and_queue_url_from_the_settings(self) -> None:
        with override_settings(**self.fake.env()):
            backend = FalBackend(accounts.settings_config("fal"))
        self.assertTrue(backend.is_configured())
        self.assertEqual(
            backend.submit(req()).poll_url.split("/fal-ai/")[0], self.fake.base_url
        )
        self.assertFalse(FalBackend(BackendConfig()).is_configured())
        self.assertEqual(FalBackend(BackendConfig()).base_url, "https://queue.fal.run")


class QueueProtocolTests(FalTestCase):
    def test_it_keeps_the_urls_as_given_and_polls_the_status_url(self) -> None:
        submission = self.backend.submit(req("flux-2-dev", references=(ref(),)))
        root = f"{self.fake.base_url}/fal-ai/flux-2/requests/{submission.task_id}"  # app root, no /edit
        self.assertEqual(submission.poll_url, f"{root}/status")
        self.assertEqual(submission.raw["response_url"], root)
        self.assertEqual(submission.raw["cancel_url"], f"{root}/cancel")

    def test_it_maps_queue_statuses_to_pending_then_ready(self) -> None:
        self.fake.latency, self.fake.queue_latency = 60.0, 30.0
        submission = self.backend.submit(req())
        first = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(first.state, ProviderState.PENDING)
        self.assertEqual(first.raw["status"], "IN_QUEUE")
        task = self.fake.task(submission.task_id)
        task.queued_until = time.monotonic()
        second = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(second.state, ProviderState.PENDING)
        self.assertEqual(second.raw["status"], "IN_PROGRESS")
        # No result fetch while pending.
        self.assertEqual(self.fake.counts["result_requests"], 0)
        self.fake.finish(submission.task_id)
        third = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(third.state, ProviderState.READY)
        self.assertEqual(self.fake.counts["result_requests"], 1)

    def test_it_derives_the_documented_urls_when_fal_leaves_them_out(self) -> None:
        self.fake.omit_urls = True
        submission, result = self.run_to_end(
            req("flux-2-klein-4b", references=(ref(),))
        )
        self.assertIn("/fal-ai/flux-2/requests/", submission.poll_url)
        self.assertIs(result.state, ProviderState.READY, result.error)
        self.assertEqual(self.fake.counts["misrouted"], 0)

    def test_it_refuses_to_send_the_key_to_a_foreign_status_url(self) -> None:
        with self.assertRaises(BackendError) as caught:
            self.backend.poll(
                task_id="x",
                poll_url="https://evil.example.com/fal-ai/flux-2/requests/x/status",
            )
        self.assertIs(caught.exception.error_class, ErrorClass.BAD_RESULT)
        self.assertEqual(self.fake.counts["status_polls"], 0)

    def test_an_unknown_request_is_not_found(self) -> None:
        url = f"{self.fake.base_url}/fal-ai/flux-2/requests/nope/status"
        result = self.backend.poll(task_id="nope", poll_url=url)
        self.assertIs(result.state, ProviderState.FAILED)
        self.assertIs(result.error.error_class, ErrorClass.NOT_FOUND)


class ResultTimeErrorTests(FalTestCase):
    def outcome(
        self, kind: str, model: str = "flux-2-dev", **options: object
    ) -> PollResult:
        self.fake.inject(kind, endpoint="submit", **options)
        _, result = self.run_to_end(req(model))
        self.assertIs(result.state, ProviderState.FAILED)
        return result

    def test_a_content_policy_refusal_is_moderated_with_its_categories(self) -> None:
        result = self.outcome("content_policy", categories=["violence"])
        self.assert_error(result.error, ErrorClass.MODERATED, False)
        self.assertEqual(result.error.details["categories"], ["violence"])

    def test_an_nsfw_flag_on_the_output_is_moderated(self) -> None:
        for model in (
            "flux-2-dev",
            "flux-2-klein-9b",
            "flux-2-pro",
        ):  # pro: 422 instead of a flag
            with self.subTest(model=model):
                result = self.outcome("nsfw", model)
                self.assert_error(result.error, ErrorClass.MODERATED, False)

    def test_a_model_error_is_a_retryable_provider_error(self) -> None:
        result = self.outcome("model_error", message="CUDA out of memory")
        self.assert_error(result.error, ErrorClass.PROVIDER_ERROR, True)
        self.assertIn("CUDA out of memory", result.error.message)

    def test_an_input_fal_refuses_is_an_invalid_request_with_its_message(self) -> None:
        result = self.outcome("invalid")
        self.assert_error(result.error, ErrorClass.INVALID_REQUEST, False)
        self.assertIn("image_urls.0", result.error.message)

    def test_the_start_timeout_is_a_timeout(self) -> None:
        result = self.outcome("timeout")
        self.assert_error(result.error, ErrorClass.TIMEOUT, False)

    def test_a_passing_gateway_failure_on_the_result_is_polled_again(self) -> None:
        submission = self.backend.submit(req())
        self.fake.inject("unavailable", endpoint="result")
        with self.assertRaises(BackendError) as caught:
            self.backend.poll(task_id=submission.task_id, poll_url=submission.poll_url)
        self.assert_error(caught.exception, ErrorClass.PROVIDER_ERROR, True)
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.state, ProviderState.READY)


class HttpFaultTests(FalTestCase):
    def submit_error(self, kind: str, **options: object) -> BackendError:
        self.fake.inject(kind, endpoint="submit", **options)
        with self.assertRaises(BackendError) as caught:
            self.backend.submit(req())
        return caught.exception

    def test_a_429_is_rate_limited_with_retry_after(self) -> None:
        error = self.submit_error("rate_limit", retry_after=7)
        self.assert_error(error, ErrorClass.RATE_LIMITED, True)
        self.assertEqual(error.retry_after, 7)

    def test_5xx_are_retryable_provider_errors(self) -> None:
        for kind, code in (("server_error", 500), ("unavailable", 503)):
            with self.subTest(kind=kind):
                error = self.submit_error(kind)
                self.assert_error(error, ErrorClass.PROVIDER_ERROR, True)
                self.assertEqual(error.status_code, code)

    def test_auth_and_quota_failures_are_not_retried(self) -> None:
        self.assert_error(self.submit_error("unauthorized"), ErrorClass.AUTH, False)
        self.assert_error(self.submit_error("forbidden"), ErrorClass.AUTH, False)
        self.assert_error(
            self.submit_error("payment_required"), ErrorClass.QUOTA, False
        )

    def test_a_wrong_key_is_an_auth_error(self) -> None:
        backend = FalBackend(
            BackendConfig(
                "wrong", self.fake.base_url, {"allowed_hosts": self.fake.allowed_hosts}
            )
        )
        with self.assertRaises(BackendError) as caught:
            backend.submit(req())
        self.assert_error(caught.exception, ErrorClass.AUTH, False)
        self.assertEqual(self.fake.counts["submissions"], 0)

    def test_a_422_is_an_invalid_request_with_fals_message(self) -> None:
        error = self.submit_error("validation")
        self.assert_error(error, ErrorClass.INVALID_REQUEST, False)
        self.assertIn("injected validation", error.message)

    def test_a_dropped_connection_is_a_retryable_network_error_that_may_have_submitted(
        self,
    ) -> None:
        error = self.submit_error("drop")
        self.assert_error(error, ErrorClass.NETWORK, True)
        self.assertTrue(error.details["maybe_submitted"])

    def test_a_slow_answer_times_out(self) -> None:
        self.assert_error(
            self.submit_error("slow", seconds=1.0), ErrorClass.TIMEOUT, True
        )

    def test_malformed_json_is_a_bad_result(self) -> None:
        self.assert_error(self.submit_error("malformed"), ErrorClass.BAD_RESULT, True)

    def test_faults_while_polling_raise_so_the_engine_polls_again(self) -> None:
        submission = self.backend.submit(req())
        for kind, error_class in (
            ("rate_limit", ErrorClass.RATE_LIMITED),
            ("server_error", ErrorClass.PROVIDER_ERROR),
            ("drop", ErrorClass.NETWORK),
            ("malformed", ErrorClass.BAD_RESULT),
        ):
            with self.subTest(kind=kind):
                self.fake.inject(kind, endpoint="status")
                with self.assertRaises(BackendError) as caught:
                    self.backend.poll(
                        task_id=submission.task_id, poll_url=submission.poll_url
                    )
                self.assert_error(caught.exception, error_class, True)
        result = self.backend.poll(
            task_id=submission.task_id, poll_url=submission.poll_url
        )
        self.assertIs(result.state, ProviderState.READY)

    def test_a_connection_refused_was_not_submitted(self) -> None:
        backend = FalBackend(
            BackendConfig("k", "http://127.0.0.1:9", {"allowed_hosts": "127.0.0.1"})
        )
        with self.assertRaises(BackendError) as caught:
            backend.submit(req())
        self.assert_error(caught.exception, ErrorClass.NETWORK, True)
        self.assertFalse(caught.exception.details["maybe_submitted"])


class CancelTests(FalTestCase):
    def test_it_cancels_a_queued_request(self) -> None:
        self.fake.latency, self.fake.queue_latency = 60.0, 60.0
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

    def test_a_running_request_gets_the_signal(self) -> None:
        self.fake.latency = 60.0
        submission = self.backend.submit(req())
        self.assertTrue(
            self.backend.cancel(
                task_id=submission.task_id, poll_url=submission.poll_url
            )
        )

    def test_a_finished_or_unknown_request_cannot_be_canceled(self) -> None:
        submission, _ = self.run_to_end(req())
        self.assertFalse(
            self.backend.cancel(
                task_id=submission.task_id, poll_url=submission.poll_url
            )
        )
        url = f"{self.fake.base_url}/fal-ai/flux-2/requests/unknown/status"
        self.assertFalse(self.backend.cancel(task_id="unknown", poll_url=url))

    def test_capabilities_say_it_can_cancel_and_call_back(self) -> None:
        caps = self.backend.capabilities()
        self.assertTrue(caps.can_cancel)
        self.assertTrue(caps.calls_back)
        self.assertFalse(caps.synchronous)


class FetchTests(FalTestCase):
    def ready(self) -> PollResult:
        _, result = self.run_to_end(req())
        self.assertIs(result.state, ProviderState.READY)
        return result

    def fetch_error(
        self, result: PollResult, backend: FalBackend | None = None
    ) -> BackendError:
        with self.assertRaises(BackendError) as caught:
            (backend or self.backend).fetch(result)
        return caught.exception

    def test_it_downloads_from_the_delivery_host(self) -> None:
        result = self.ready()
        self.assertTrue(
            result.result_url.startswith(f"http://localhost:{self.fake.port}/files/")
        )
        data, content_type = self.backend.fetch(result)
        self.assertEqual(content_type, "image/jpeg")  # pro's default output format
        self.assertEqual(self.fake.counts["deliveries"], 1)

    def test_an_expired_file_is_expired(self) -> None:
        result = self.ready()
        self.fake.inject("expired")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.EXPIRED)

    def test_a_page_that_is_not_an_image_is_a_bad_result(self) -> None:
        result = self.ready()
        self.fake.inject("wrong_content_type")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.BAD_RESULT)
        self.fake.inject("malformed", endpoint="delivery")
        self.assertIs(self.fetch_error(result).error_class, ErrorClass.BAD_RESULT)

    def test_it_does_not_follow_a_redirect_to_a_private_host(self) -> None:
        result = self.ready()
        self.fake.inject("redirect", location="http://169.254.169.254/latest/meta-data")
        error = self.fetch_error(result)
        self.assertIs(error.error_class, ErrorClass.BAD_RESULT)
        self.assertTrue(error.details["refused"])

    def test_it_only_downloads_from_allowed_hosts(self) -> None:
        result = self.ready()
        strict = FalBackend(
            BackendConfig(
                self.fake.api_key, self.fake.base_url, {"allowed_hosts": "127.0.0.1"}
            )
        )
        self.assertTrue(self.fetch_error(result, strict).details["refused"])
        foreign = PollResult(
            ProviderState.READY, result_url="https://example.com/out.png"
        )
        self.assertTrue(self.fetch_error(foreign).details["refused"])
        self.assertEqual(self.fake.counts["deliveries"], 0)

    def test_fal_media_is_a_delivery_host_by_default(self) -> None:
        policy = FalBackend(BackendConfig("k")).delivery_policy
        self.assertTrue(policy.allows_host("v3b.fal.media"))
        self.assertFalse(policy.allows_host("fal.media.evil.example"))

    def test_an_inline_data_uri_result_needs_no_download(self) -> None:
        png = make_image(32, 32)
        output = {"images": [{"url": data_uri(png, "image/png")}], "seed": 1}
        result = result_from_output(output)
        self.assertEqual(self.backend.fetch(result), (png, "image/png"))


class PricingTests(FalTestCase):
    def cost(
        self, model: str, width: int = 1024, height: int = 1024, refs: int = 0
    ) -> Decimal:
        references = tuple(ref(1024, 1024) for _ in range(refs))
        return self.backend.estimate_cost(
            req(model, width=width, height=height, references=references)
        )

    def test_it_prices_as_the_providers_page_documents(self) -> None:
        cases = [
            ("flux-2-pro", 1024, 1024, 0, "0.03"),  # $0.03 first MP
            ("flux-2-pro", 1024, 1024, 1, "0.045"),  # inputs at $0.015/MP
            ("flux-2-pro", 2048, 2048, 0, "0.075"),  # + $0.015 each extra MP
            ("flux-2-max", 1024, 1024, 0, "0.07"),
            ("flux-2-max", 1024, 1024, 1, "0.10"),  # input MP count as processed MP
            (
                "flux-2-flex",
                1920,
                1080,
                0,
                "0.10",
            ),  # fal's example: 1920×1080 = 2 MP = $0.10
            ("flux-2-flex", 1024, 1024, 1, "0.10"),
            ("flux-2-dev", 1024, 1024, 1, "0.024"),  # ≈ $0.012/MP in and out
            ("flux-2-klein-4b", 1024, 1024, 1, "0.015"),  # BFL's klein prices (1.12)
            ("flux-2-klein-9b", 1024, 1024, 1, "0.017"),
        ]
        for model, width, height, refs, usd in cases:
            with self.subTest(model=model, size=(width, height), refs=refs):
                self.assertEqual(self.cost(model, width, height, refs), Decimal(usd))

    def test_megapixels_are_rounded_up_per_image(self) -> None:
        # 1.02 MP -> 2 MP.
        self.assertEqual(self.cost("flux-2-pro", 1040, 1024), Decimal("0.045"))
        self.assertEqual(self.cost("flux-2-flex", 1040, 1024), Decimal("0.10"))

    def test_the_submit_answer_carries_no_cost(self) -> None:
        self.assertIsNone(self.backend.submit(req()).cost)


class RuleTests(FalTestCase):
    def violation(self, request: GenerationRequest) -> RuleViolation:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(request)
        self.assertEqual(self.fake.counts["submit_requests"], 0)  # nothing was sent
        return caught.exception

    def test_each_model_limits_its_references(self) -> None:
        for model, limit in (
            ("flux-2-pro", 8),
            ("flux-2-max", 8),
            ("flux-2-flex", 8),
            ("flux-2-dev", 4),
            ("flux-2-klein-4b", 4),
        ):
            with self.subTest(model=model):
                error = self.violation(
                    req(model, references=tuple(ref(64, 64) for _ in range(limit + 1)))
                )
                self.assertEqual(error.rule, "max_references")
                self.assertIn(f"at most {limit}", error.message)

    def test_it_refuses_sizes_fal_does_not_produce(self) -> None:
        self.assertEqual(
            self.violation(req("flux-2-dev", width=256, height=256)).rule, "dimensions"
        )
        self.assertEqual(
            self.violation(req("flux-2-pro", width=1000, height=1000)).rule,
            "dimension_step",
        )
        self.assertEqual(
            self.violation(req("flux-2-pro", width=2048, height=2064)).rule,
            "max_megapixels",
        )
        # 2048×2048 is 4 MP as BFL counts it.
        self.backend.validate(req("flux-2-pro", width=2048, height=2048))

    def test_it_refuses_parameters_a_model_does_not_take_or_values_out_of_range(
        self,
    ) -> None:
        self.assertEqual(
            self.violation(req("flux-2-pro", params={"steps": 20})).rule, "params"
        )
        self.assertEqual(
            self.violation(req("flux-2-pro", params={"safety_tolerance": 0})).rule,
            "param_range",
        )
        self.assertEqual(
            self.violation(req("flux-2-klein-4b", params={"steps": 20})).rule,
            "param_range",
        )
        self.assertEqual(
            self.violation(req("flux-2-dev", params={"output_format": "gif"})).rule,
            "param_range",
        )
        self.assertEqual(self.violation(req(prompt="  ")).rule, "prompt")


class WebhookTests(FalTestCase):
    def finished(self) -> str:
        submission, result = self.run_to_end(req())
        self.assertIs(result.state, ProviderState.READY)
        return submission.task_id

    def parse(self, headers: dict[str, str], body: bytes) -> tuple[str, PollResult]:
        return self.backend.parse_webhook(headers=headers, body=body, secret="")

    def auth_error(self, headers: dict[str, str], body: bytes) -> BackendError:
        with self.assertRaises(BackendError) as caught:
            self.parse(headers, body)
        self.assertIs(caught.exception.error_class, ErrorClass.AUTH)
        self.assertEqual(caught.exception.status_code, 401)
        return caught.exception

    def test_a_submit_with_a_webhook_url_gets_a_signed_callback_that_verifies(
        self,
    ) -> None:
        with WebhookReceiver() as hooks:
            submission = self.backend.submit(req(webhook_url=hooks.url))
            # The URL went as ?fal_webhook=.
            self.assertEqual(self.fake.task(submission.task_id).webhook_url, hooks.url)
            [(headers, body)] = hooks.wait(1)
        task_id, result = self.parse(headers, body)
        self.assertEqual(task_id, submission.task_id)
        self.assertIs(result.state, ProviderState.READY)
        self.assertIn(f"/files/{task_id}/", result.result_url)
        self.assertEqual(self.fake.counts["status_polls"], 0)  # no poll was needed

    def test_a_valid_signature_verifies_and_the_keys_are_cached(self) -> None:
        task_id = self.finished()
        for _ in range(2):
            body, headers = self.fake.webhook_message(self.fake.task(task_id), None)
            self.assertEqual(self.parse(headers, body)[0], task_id)
        self.assertEqual(self.fake.counts["jwks"], 1)

    def test_a_tampered_body_is_refused(self) -> None:
        body, headers = self.fake.webhook_message(self.fake.task(self.finished()), None)
        self.auth_error(headers, body.replace(b'"OK"', b'"ERROR"'))

    def test_a_signature_by_another_key_is_refused(self) -> None:
        body, headers = self.fake.webhook_message(
            self.fake.task(self.finished()), "bad_signature"
        )
        self.auth_error(headers, body)

    def test_a_stale_timestamp_is_refused(self) -> None:
        body, headers = self.fake.webhook_message(
            self.fake.task(self.finished()), "stale"
        )
        self.assertIn("old", self.auth_error(headers, body).message)

    def test_an_unsigned_callback_is_refused(self) -> None:
        body, headers = self.fake.webhook_message(
            self.fake.task(self.finished()), "unsigned"
        )
        self.auth_error(headers, body)

    def test_a_body_for_another_request_is_refused(self) -> None:
        task_id = self.finished()
        body = json.dumps(
            {"request_id": "someone-else", "status": "OK", "payload": {}}
        ).encode()
        self.auth_error(self.fake.sign(task_id, body), body)

    def test_rotated_keys_are_fetched_again(self) -> None:
        task_id = self.finished()
        body, headers = self.fake.webhook_message(self.fake.task(task_id), None)
        self.parse(headers, body)
        self.fake.signing_key = Ed25519PrivateKey.generate()
        body, headers = self.fake.webhook_message(self.fake.task(task_id), None)
        with mock.patch.object(fal_webhooks, "JWKS_MIN_REFRESH", 0.0):
            self.assertEqual(self.parse(headers, body)[0], task_id)
        self.assertEqual(self.fake.counts["jwks"], 2)

    def test_unreachable_keys_are_a_retryable_error(self) -> None:
        backend = FalBackend(self.fake.config(jwks_url="http://127.0.0.1:9/jwks.json"))
        body, headers = self.fake.webhook_message(self.fake.task(self.finished()), None)
        with self.assertRaises(BackendError) as caught:
            backend.parse_webhook(headers=headers, body=body, secret="")
        self.assert_error(caught.exception, ErrorClass.NETWORK, True)

    def test_an_error_callback_fails_with_the_right_class(self) -> None:
        self.fake.inject("content_policy", endpoint="submit")
        _, result = self.run_to_end(req())
        task = self.fake.task(self.fake.task_ids[0])
        body, headers = self.fake.webhook_message(task, None)
        _, result = self.parse(headers, body)
        self.assertIs(result.state, ProviderState.FAILED)
        self.assertIs(result.error.error_class, ErrorClass.MODERATED)
        task.outcome = "model_error"
        body, headers = self.fake.webhook_message(task, None)
        self.assert_error(
            self.parse(headers, body)[1].error, ErrorClass.PROVIDER_ERROR, True
        )

    def test_a_callback_without_its_payload_leaves_the_result_to_polling(self) -> None:
        task_id = self.finished()
        body = json.dumps(
            {
                "request_id": task_id,
                "status": "OK",
                "payload": None,
                "payload_error": "too big",
            }
        ).encode()
        _, result = self.parse(self.fake.sign(task_id, body), body)
        self.assertIs(result.state, ProviderState.PENDING)

    def test_the_fake_retries_a_callback_the_receiver_refused(self) -> None:
        self.fake.webhook_retry_delays = (0.05,)
        try:
            with WebhookReceiver(status=500) as hooks:
                self.backend.submit(req(webhook_url=hooks.url))
                self.assertEqual(len(hooks.wait(2)), 2)
        finally:
            self.fake.webhook_retry_delays = (1.0, 5.0, 30.0)
