"""Contract tests: the real BFL client against the fake BFL server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from unittest import mock

import httpx
from django.test import SimpleTestCase
from PIL import Image

from generation.backends import bfl, download, transport
from generation.backends.base import (
    BackendConfig,
    BackendError,
    ErrorClass,
    GenerationRequest,
    PollResult,
    ProviderState,
    ReferenceInput,
    RuleViolation,
    billed_megapixels,
)
from generation.backends.bfl import BFLBackend, resolve_base_url
from tests.fakes.bfl_server import FakeBFL, make_image


def ref(
    width: int = 64,
    height: int = 64,
    role: str = "product",
    colour: tuple[int, int, int] = (10, 20, 30),
) -> ReferenceInput:
    return ReferenceInput(
        role, make_image(width, height, "PNG", colour), "image/png", width, height
    )


def req(model: str = "flux-2-pro", **kw: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "a red bicycle",
        "width": 512,
        "height": 512,
        "seed": 7,
    }
    values.update(kw)
    return GenerationRequest(model=model, **values)  # type: ignore[arg-type]


class FakeServerTestCase(SimpleTestCase):
    """One fake per class; every test starts from a clean fake with no latency."""

    fake_options: dict[str, object] = {}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeBFL(slow_seconds=1.0, **cls.fake_options)  # type: ignore[arg-type]
        cls.fake.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        self.fake.reset()
        self.fake.latency = 0.0
        self.fake.url_ttl = 600.0
        self.backend = BFLBackend(self.fake.config(read_timeout="0.5"))

    def run_to_ready(self, request: GenerationRequest) -> PollResult:
        sub = self.backend.submit(request)
        result = self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
        self.assertEqual(result.state, ProviderState.READY, result)
        return result

    def assertFails(
        self, cls: ErrorClass, call: object, *, retryable: bool | None = None
    ) -> BackendError:
        with self.assertRaises(BackendError) as ctx:
            call()  # type: ignore[operator]
        self.assertEqual(ctx.exception.error_class, cls, ctx.exception)
        if retryable is not None:
            self.assertIs(ctx.exception.retryable, retryable, ctx.exception)
        return ctx.exception


class EveryModelTests(FakeServerTestCase):
    def test_every_model_generates_end_to_end(self) -> None:
        for model in bfl.MODELS:
            with self.subTest(model=model):
                refs = (ref(), ref(role="style"))
                result = self.run_to_ready(
                    req(model, references=refs, params={"safety_tolerance": 3})
                )
                data, content_type = self.backend.fetch(result)
                self.assertEqual(
                    content_type, "image/jpeg"
                )  # BFL's default output_format
                with Image.open(io.BytesIO(data)) as image:
                    self.assertEqual(image.size, (512, 512))
                body = self.fake.bodies[-1]
                self.assertEqual(body["safety_tolerance"], 3)
                self.assertEqual(body["seed"], 7)
                self.assertIn("input_image_2", body)
        self.assertEqual(self.fake.counts["submissions"], len(bfl.MODELS))
        self.assertEqual(self.fake.counts["misrouted_polls"], 0)

    def test_flex_takes_steps_guidance_and_prompt_upsampling(self) -> None:
        params = {
            "steps": 28,
            "guidance": 3,
            "prompt_upsampling": False,
            "output_format": "png",
        }
        result = self.run_to_ready(req("flux-2-flex", params=params))
        body = self.fake.bodies[-1]
        self.assertEqual(
            (body["steps"], body["guidance"], body["prompt_upsampling"]),
            (28, 3.0, False),
        )
        self.assertIsInstance(body["guidance"], float)
        self.assertEqual(self.backend.fetch(result)[1], "image/png")

    def test_klein_9b_preview_takes_webp(self) -> None:
        result = self.run_to_ready(
            req("flux-2-klein-9b-preview", params={"output_format": "webp"})
        )
        self.assertEqual(self.backend.fetch(result)[1], "image/webp")

    def test_ready_carries_seed_prompt_and_cost(self) -> None:
        result = self.run_to_ready(req(width=1024, height=1024, seed=1234))
        self.assertEqual(result.seed, 1234)
        self.assertEqual(result.provider_prompt, "a red bicycle")
        self.assertEqual(result.cost, Decimal("0.03"))
        self.assertTrue(
            result.result_url.startswith(f"{self.fake.poll_base}/delivery/")
        )

    def test_references_go_as_raw_base64_input_images_in_order(self) -> None:
        refs = tuple(ref(colour=(i * 20, 0, 0), role=f"role{i}") for i in range(8))
        self.run_to_ready(req(references=refs))
        body = self.fake.bodies[-1]
        names = ["input_image"] + [f"input_image_{i}" for i in range(2, 9)]
        self.assertEqual(
            sorted(k for k in body if k.startswith("input_image")), sorted(names)
        )
        for name, reference in zip(names, refs, strict=True):
            self.assertFalse(body[name].startswith("data:"))
            self.assertEqual(
                base64.b64decode(body[name], validate=True), reference.content
            )

    def test_webhook_fields_are_sent_when_set(self) -> None:
        self.backend.submit(
            req(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s3cret")
        )
        body = self.fake.bodies[-1]
        self.assertEqual(
            (body["webhook_url"], body["webhook_secret"]),
            ("http://127.0.0.1:9/hook", "s3cret"),
        )

    def test_optional_fields_are_left_out_when_unset(self) -> None:
        self.backend.submit(req(seed=None, params={"safety_tolerance": None}))
        self.assertEqual(set(self.fake.bodies[-1]), {"prompt", "width", "height"})


class PollingTests(FakeServerTestCase):
    def test_pending_with_progress_then_ready_after_latency(self) -> None:
        self.fake.latency = 0.4
        sub = self.backend.submit(req())
        started = time.monotonic()
        first = self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
        self.assertLess(
            time.monotonic() - started, 0.2, "a poll must never wait for the provider"
        )
        self.assertEqual(first.state, ProviderState.PENDING)
        self.assertIsNotNone(first.progress)
        self.assertGreaterEqual(first.progress, 0.0)
        self.assertLess(first.progress, 1.0)
        time.sleep(0.45)
        self.assertEqual(
            self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url).state,
            ProviderState.READY,
        )

    def test_submit_keeps_the_polling_url_exactly_as_given(self) -> None:
        sub = self.backend.submit(req())
        self.assertEqual(sub.poll_url, sub.raw["polling_url"])
        self.assertTrue(sub.poll_url.startswith(self.fake.poll_base))
        self.assertNotEqual(self.fake.poll_base, self.fake.base_url)
        self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
        self.assertEqual(self.fake.counts["polls"], 1)
        self.assertEqual(self.fake.counts["misrouted_polls"], 0)

    def test_the_fake_catches_a_rebuilt_polling_url(self) -> None:
        sub = self.backend.submit(req())
        rebuilt = f"{self.fake.base_url}/v1/get_result?id={sub.task_id}"
        self.assertFails(
            ErrorClass.NOT_FOUND,
            lambda: self.backend.poll(task_id=sub.task_id, poll_url=rebuilt),
        )
        # Without a polling_url the client falls back to /v1/get_result on its base URL.
        self.assertFails(
            ErrorClass.NOT_FOUND,
            lambda: self.backend.poll(task_id=sub.task_id, poll_url=None),
        )
        self.assertEqual(self.fake.counts["misrouted_polls"], 2)

    def test_the_key_is_never_sent_to_a_foreign_polling_host(self) -> None:
        error = self.assertFails(
            ErrorClass.BAD_RESULT,
            lambda: self.backend.poll(
                task_id="x", poll_url="https://evil.example.com/v1/get_result?id=x"
            ),
            retryable=False,
        )
        self.assertTrue(error.details["refused"])

    def test_unknown_task_is_not_found(self) -> None:
        sub = self.backend.submit(req())
        url = sub.poll_url.replace(sub.task_id, "00000000-0000-0000-0000-000000000000")
        result = self.backend.poll(
            task_id="00000000-0000-0000-0000-000000000000", poll_url=url
        )
        self.assertEqual(result.state, ProviderState.FAILED)
        self.assertEqual(result.error.error_class, ErrorClass.NOT_FOUND)
        self.assertFalse(result.error.retryable)


class StatusMappingTests(FakeServerTestCase):
    def poll_once(self, request: GenerationRequest | None = None) -> PollResult:
        sub = self.backend.submit(request or req())
        return self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)

    def test_request_moderated_is_terminal_with_reasons(self) -> None:
        self.fake.latency = 5  # request moderation shows at once, before any latency
        self.fake.inject(
            "request_moderated", endpoint="submit", reasons=["Prompt: public figure"]
        )
        result = self.poll_once()
        self.assertEqual(result.state, ProviderState.FAILED)
        error = result.error
        self.assertEqual(error.error_class, ErrorClass.MODERATED)
        self.assertFalse(error.retryable)
        self.assertEqual(error.details["moderation"], "request")
        self.assertEqual(error.details["reasons"], ["Prompt: public figure"])
        self.assertIn("Prompt: public figure", error.message)
        self.assertIn("before generating", error.message)

    def test_content_moderated_is_terminal_with_reasons(self) -> None:
        self.fake.inject(
            "content_moderated", reasons=["NSFW", "Derivative Works Filter"]
        )
        error = self.poll_once().error
        self.assertEqual(error.error_class, ErrorClass.MODERATED)
        self.assertFalse(error.retryable)
        self.assertEqual(error.details["moderation"], "content")
        self.assertIn("NSFW, Derivative Works Filter", error.message)
        self.assertIn("generated image", error.message)

    def test_content_moderation_from_a_prompt_tag_after_the_latency(self) -> None:
        self.fake.latency = 0.2
        sub = self.backend.submit(req(prompt="a poster [fake:content_moderated]"))
        self.assertEqual(
            self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url).state,
            ProviderState.PENDING,
        )
        time.sleep(0.25)
        result = self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
        self.assertEqual(result.error.details["moderation"], "content")

    def test_error_and_failed_are_retryable_provider_errors(self) -> None:
        for kind in ("error", "failed"):
            with self.subTest(kind=kind):
                self.fake.inject(kind, message="GPU fell over")
                result = self.poll_once()
                self.assertEqual(result.state, ProviderState.FAILED)
                self.assertEqual(result.error.error_class, ErrorClass.PROVIDER_ERROR)
                self.assertTrue(result.error.retryable)
                self.assertIn("GPU fell over", result.error.message)

    def test_task_not_found_status(self) -> None:
        self.fake.inject("not_found")
        result = self.poll_once()
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.NOT_FOUND),
        )

    def test_an_outcome_fault_sticks_to_the_task(self) -> None:
        self.fake.latency = 5
        sub = self.backend.submit(req())
        self.fake.inject("error")
        for _ in range(2):
            result = self.backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
            self.assertEqual(result.error.error_class, ErrorClass.PROVIDER_ERROR)
        self.assertEqual(self.fake.active(), 0)

    def test_payload_mapping_without_a_server(self) -> None:
        pending = bfl.result_from_payload(
            {"id": "t", "status": "Pending", "progress": 1.7}
        )
        self.assertEqual(
            (pending.state, pending.progress), (ProviderState.PENDING, 1.0)
        )
        self.assertFails(
            ErrorClass.BAD_RESULT,
            lambda: bfl.result_from_payload({"id": "t", "status": "Ready"}),
        )
        self.assertFails(
            ErrorClass.BAD_RESULT,
            lambda: bfl.result_from_payload({"id": "t", "status": "Exploded"}),
        )
        moderated = bfl.result_from_payload(
            {"status": "Content Moderated", "details": {"Moderation Reasons": "NSFW"}}
        )
        self.assertEqual(moderated.error.details["reasons"], ["NSFW"])
        bare = bfl.result_from_payload({"status": "Request Moderated", "details": None})
        self.assertIn("no reasons given", bare.error.message)


class SubmitFaultTests(FakeServerTestCase):
    def submit(self) -> object:
        return self.backend.submit(req())

    def test_429_with_retry_after_seconds(self) -> None:
        self.fake.inject("rate_limit", endpoint="submit", retry_after=3)
        error = self.assertFails(ErrorClass.RATE_LIMITED, self.submit, retryable=True)
        self.assertEqual(error.retry_after, 3.0)
        self.assertEqual(error.status_code, 429)

    def test_429_with_retry_after_as_an_http_date(self) -> None:
        self.fake.inject("rate_limit", endpoint="submit", retry_after=3, header="date")
        error = self.assertFails(ErrorClass.RATE_LIMITED, self.submit, retryable=True)
        self.assertGreaterEqual(error.retry_after, 1.5)
        self.assertLessEqual(error.retry_after, 3.5)

    def test_429_with_retry_after_only_in_the_body(self) -> None:
        self.fake.inject("rate_limit", endpoint="submit", retry_after=7, header="none")
        self.assertEqual(
            self.assertFails(ErrorClass.RATE_LIMITED, self.submit).retry_after, 7.0
        )

    def test_concurrency_cap_answers_429_until_a_task_finishes(self) -> None:
        self.fake.concurrency = 2
        self.fake.latency = 0.4
        try:
            self.submit()
            self.submit()
            error = self.assertFails(
                ErrorClass.RATE_LIMITED, self.submit, retryable=True
            )
            self.assertGreaterEqual(error.retry_after, 1.0)
            self.assertIn("2 active tasks", error.message)
            self.assertEqual(self.fake.counts["rate_limited"], 1)
            time.sleep(0.45)
            self.submit()
            self.assertEqual(self.fake.max_active, 2)
        finally:
            self.fake.concurrency = 24

    def test_server_errors_are_retryable(self) -> None:
        for kind, status in (("server_error", 500), ("unavailable", 503)):
            with self.subTest(kind=kind):
                self.fake.inject(kind, endpoint="submit")
                error = self.assertFails(
                    ErrorClass.PROVIDER_ERROR, self.submit, retryable=True
                )
                self.assertEqual(error.status_code, status)

    def test_dropped_connection_is_a_retryable_network_error(self) -> None:
        self.fake.inject("drop", endpoint="submit")
        self.assertFails(ErrorClass.NETWORK, self.submit, retryable=True)
        self.assertEqual(self.fake.counts["submissions"], 0)

    def test_refused_connection_is_a_retryable_network_error(self) -> None:
        with socket_bound() as port:  # a port nobody listens on
            backend = BFLBackend(
                BackendConfig(api_key="k", base_url=f"http://127.0.0.1:{port}")
            )
            self.assertFails(
                ErrorClass.NETWORK, lambda: backend.submit(req()), retryable=True
            )

    def test_slow_answer_is_a_retryable_timeout(self) -> None:
        self.fake.inject("slow", endpoint="submit")
        started = time.monotonic()
        self.assertFails(ErrorClass.TIMEOUT, self.submit, retryable=True)
        self.assertLess(time.monotonic() - started, 0.9)

    def test_malformed_json_is_a_retryable_bad_result(self) -> None:
        self.fake.inject("malformed", endpoint="submit")
        self.assertFails(ErrorClass.BAD_RESULT, self.submit, retryable=True)

    def test_auth_and_quota_errors_are_not_retryable(self) -> None:
        for kind, cls in (
            ("unauthorized", ErrorClass.AUTH),
            ("forbidden", ErrorClass.AUTH),
            ("payment_required", ErrorClass.QUOTA),
        ):
            with self.subTest(kind=kind):
                self.fake.inject(kind, endpoint="submit")
                self.assertFails(cls, self.submit, retryable=False)

    def test_quota_message_comes_from_the_error_message_body(self) -> None:
        self.fake.inject("payment_required", endpoint="submit")
        error = self.assertFails(ErrorClass.QUOTA, self.submit)
        self.assertIn("Insufficient credits", error.message)
        self.assertIn("insufficient_credits", error.message)

    def test_wrong_key_is_an_auth_error(self) -> None:
        backend = BFLBackend(
            BackendConfig(api_key="bfl_wrong", base_url=self.fake.base_url)
        )
        error = self.assertFails(
            ErrorClass.AUTH, lambda: backend.submit(req()), retryable=False
        )
        self.assertEqual(error.status_code, 403)

    def test_missing_key_is_refused_before_sending(self) -> None:
        backend = BFLBackend(BackendConfig(base_url=self.fake.base_url))
        self.assertFalse(backend.is_configured())
        self.assertFails(ErrorClass.AUTH, lambda: backend.submit(req()))
        self.assertEqual(self.fake.counts["submit_requests"], 0)

    def test_fastapi_422_detail_becomes_an_invalid_request_with_the_message(
        self,
    ) -> None:
        body = self.backend.build_body(req())
        body["width"] = 1000  # past our own rule check: the fake's validation answers
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST,
            lambda: self.backend._call(
                "POST", f"{self.fake.base_url}/v1/flux-2-pro", "submit", json=body
            ),
            retryable=False,
        )
        self.assertEqual(error.status_code, 422)
        self.assertIn(
            "width: Value error, width must be a multiple of 16", error.message
        )

    def test_the_fake_refuses_fields_a_model_does_not_take(self) -> None:
        body = {**self.backend.build_body(req()), "steps": 20, "input_image_9": "x"}
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST,
            lambda: self.backend._call(
                "POST", f"{self.fake.base_url}/v1/flux-2-pro", "submit", json=body
            ),
        )
        self.assertIn("steps: Extra inputs are not permitted", error.message)
        self.assertIn("input_image_9: Extra inputs are not permitted", error.message)

    def test_400_error_message_body_becomes_an_invalid_request(self) -> None:
        self.fake.inject("bad_request", endpoint="submit")
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST, self.submit, retryable=False
        )
        self.assertIn("could not be processed", error.message)

    def test_probabilistic_faults_hit_some_requests(self) -> None:
        self.fake.inject("server_error", endpoint="submit", probability=0.5)
        outcomes = []
        for _ in range(40):
            try:
                self.submit()
                outcomes.append("ok")
            except BackendError as exc:
                outcomes.append(exc.error_class)
        self.assertIn("ok", outcomes)
        self.assertIn(ErrorClass.PROVIDER_ERROR, outcomes)
        self.fake.clear_faults()
        self.submit()


class PollFaultTests(FakeServerTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.sub = self.backend.submit(req())

    def poll(self) -> PollResult:
        return self.backend.poll(task_id=self.sub.task_id, poll_url=self.sub.poll_url)

    def test_transient_poll_faults_then_recovery(self) -> None:
        cases = [
            ("rate_limit", ErrorClass.RATE_LIMITED),
            ("server_error", ErrorClass.PROVIDER_ERROR),
            ("unavailable", ErrorClass.PROVIDER_ERROR),
            ("drop", ErrorClass.NETWORK),
            ("slow", ErrorClass.TIMEOUT),
            ("malformed", ErrorClass.BAD_RESULT),
        ]
        for kind, cls in cases:
            with self.subTest(kind=kind):
                self.fake.inject(kind, endpoint="poll")
                self.assertFails(cls, self.poll, retryable=True)
                self.assertEqual(self.poll().state, ProviderState.READY)

    def test_poll_auth_errors(self) -> None:
        self.fake.inject("unauthorized", endpoint="poll")
        self.assertFails(ErrorClass.AUTH, self.poll, retryable=False)


class FetchTests(FakeServerTestCase):
    def ready(self, **kw: object) -> PollResult:
        return self.run_to_ready(req(**kw))

    def test_fetch_returns_verified_image_bytes(self) -> None:
        data, content_type = self.backend.fetch(
            self.ready(params={"output_format": "png"})
        )
        self.assertEqual(content_type, "image/png")
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        self.assertEqual(self.fake.counts["deliveries"], 1)

    def test_results_are_unique_per_task(self) -> None:
        first = self.backend.fetch(self.ready(seed=1))[0]
        second = self.backend.fetch(self.ready(seed=1))[0]
        self.assertNotEqual(first, second)

    def test_expired_url_is_expired(self) -> None:
        result = self.ready()
        self.fake.inject("expired")
        error = self.assertFails(
            ErrorClass.EXPIRED, lambda: self.backend.fetch(result), retryable=False
        )
        self.assertEqual(error.status_code, 403)

    def test_a_url_past_its_signed_expiry_is_expired(self) -> None:
        self.fake.url_ttl = -1
        result = self.ready()
        self.assertFails(
            ErrorClass.EXPIRED, lambda: self.backend.fetch(result), retryable=False
        )

    def test_azure_authentication_failed_on_another_status_is_expired(self) -> None:
        response = httpx.Response(
            400, text="<Error><Code>AuthenticationFailed</Code></Error>"
        )
        self.assertEqual(
            download.download_error(response, "x").error_class, ErrorClass.EXPIRED
        )

    def test_wrong_content_type_is_a_bad_result(self) -> None:
        result = self.ready()
        self.fake.inject("wrong_content_type")
        error = self.assertFails(
            ErrorClass.BAD_RESULT, lambda: self.backend.fetch(result)
        )
        self.assertIn("text/html", error.message)

    def test_undecodable_bytes_are_a_bad_result(self) -> None:
        result = self.ready()
        self.fake.inject("malformed", endpoint="delivery")
        self.assertFails(
            ErrorClass.BAD_RESULT, lambda: self.backend.fetch(result), retryable=True
        )

    def test_delivery_server_error_and_drop_are_retryable(self) -> None:
        result = self.ready()
        self.fake.inject("server_error", endpoint="delivery")
        self.assertFails(
            ErrorClass.PROVIDER_ERROR,
            lambda: self.backend.fetch(result),
            retryable=True,
        )
        self.fake.inject("drop", endpoint="delivery")
        self.assertFails(
            ErrorClass.NETWORK, lambda: self.backend.fetch(result), retryable=True
        )
        self.assertEqual(self.backend.fetch(result)[1], "image/jpeg")

    def test_foreign_hosts_are_refused_without_a_request(self) -> None:
        for url in (
            "https://evil.example.com/sample.jpeg",
            "https://bfl.ai.evil.example.com/sample.jpeg",
            "http://delivery-eu1.bfl.ai/sample.jpeg",  # plain http to a provider host
            "ftp://delivery-eu1.bfl.ai/sample.jpeg",
        ):
            with self.subTest(url=url):
                result = PollResult(ProviderState.READY, result_url=url)
                error = self.assertFails(
                    ErrorClass.BAD_RESULT,
                    lambda r=result: self.backend.fetch(r),
                    retryable=False,
                )
                self.assertTrue(error.details["refused"])

    def test_redirects_to_private_or_foreign_hosts_are_refused(self) -> None:
        result = self.ready()
        for location in (
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/sample.jpeg",
            "https://evil.example.com/sample.jpeg",
        ):
            with self.subTest(location=location):
                self.fake.inject("redirect", location=location)
                error = self.assertFails(
                    ErrorClass.BAD_RESULT,
                    lambda: self.backend.fetch(result),
                    retryable=False,
                )
                self.assertTrue(error.details["refused"])

    def test_redirect_within_the_allowed_hosts_is_followed(self) -> None:
        result = self.ready()
        same_file = result.result_url.replace(self.fake.poll_base, self.fake.base_url)
        self.fake.inject("redirect", location=same_file)
        self.assertEqual(self.backend.fetch(result)[1], "image/jpeg")
        self.assertEqual(self.fake.counts["deliveries"], 2)

    def test_provider_names_resolving_to_private_addresses_are_refused(self) -> None:
        result = PollResult(
            ProviderState.READY, result_url="https://delivery-eu1.bfl.ai/sample.jpeg"
        )
        with mock.patch.object(download, "resolve_host", return_value=["10.1.2.3"]):
            error = self.assertFails(
                ErrorClass.BAD_RESULT,
                lambda: self.backend.fetch(result),
                retryable=False,
            )
        self.assertIn("private", error.message)

    def test_size_cap(self) -> None:
        backend = BFLBackend(self.fake.config(max_result_bytes="100"))
        result = self.ready()
        self.assertFails(
            ErrorClass.BAD_RESULT, lambda: backend.fetch(result), retryable=False
        )

    def test_host_policy_matching(self) -> None:
        policy = download.HostPolicy.build(
            "https://api.bfl.ai", [".example.org", "10.0.0.7"], bfl.PROVIDER_HOSTS
        )
        for host in (
            "api.bfl.ai",
            "delivery-eu1.bfl.ai",
            "api.bfl.ml",
            "bfldeliveryprod.blob.core.windows.net",
            "cdn.example.org",
            "10.0.0.7",
        ):
            self.assertTrue(policy.allows_host(host), host)
        for host in (
            "bfl.ai.evil.com",
            "evilbfl.ai",
            "blob.core.windows.net",
            "10.0.0.8",
            "example.org.evil",
        ):
            self.assertFalse(policy.allows_host(host), host)
        policy.check(
            "http://10.0.0.7/x.png", what="t", resolve=True
        )  # explicitly allowed: private and http ok


class PricingTests(SimpleTestCase):
    backend = BFLBackend(BackendConfig(api_key="k"))

    def price(
        self, model: str, refs: int = 0, width: int = 1024, height: int = 1024
    ) -> Decimal:
        references = tuple(
            ReferenceInput("product", b"", "image/png", 1024, 1024) for _ in range(refs)
        )
        return self.backend.estimate_cost(
            req(model, width=width, height=height, references=references)
        )

    def test_the_providers_page_figures(self) -> None:
        figures = {
            "flux-2-pro": ("0.03", "0.045"),
            "flux-2-pro-preview": ("0.03", "0.045"),
            "flux-2-max": ("0.07", "0.10"),
            "flux-2-flex": ("0.05", "0.10"),
            "flux-2-klein-4b": ("0.014", "0.015"),
            "flux-2-klein-9b": ("0.015", "0.017"),
            "flux-2-klein-9b-preview": ("0.015", "0.017"),
        }
        for model, (t2i, edit) in figures.items():
            with self.subTest(model=model):
                self.assertEqual(self.price(model), Decimal(t2i))
                self.assertEqual(self.price(model, refs=1), Decimal(edit))

    def test_megapixels_are_1024_squared_rounded_up_per_image(self) -> None:
        self.assertEqual(billed_megapixels(1024, 1024), 1)
        self.assertEqual(billed_megapixels(64, 64), 1)
        self.assertEqual(billed_megapixels(1920, 1080), 2)  # fal's documented example
        self.assertEqual(billed_megapixels(1024, 1040), 2)
        self.assertEqual(billed_megapixels(2048, 2048), 4)
        # pro at 2048×2048 with two 1 MP refs: 3 + 3×1.5 + 2×1.5 = 10.5 cents
        self.assertEqual(
            self.price("flux-2-pro", refs=2, width=2048, height=2048), Decimal("0.105")
        )

    def test_cost_in_the_answers_is_credits_to_usd(self) -> None:
        self.assertEqual(bfl.credits_to_usd(3.0), Decimal("0.03"))
        self.assertEqual(bfl.credits_to_usd(4.5), Decimal("0.045"))
        self.assertIsNone(bfl.credits_to_usd(None))
        self.assertIsNone(bfl.credits_to_usd("lots"))

    def test_submit_cost_comes_from_the_answer(self) -> None:
        with FakeBFL() as fake:
            backend = BFLBackend(fake.config())
            sub = backend.submit(
                req(
                    "flux-2-max", width=1024, height=1024, references=(ref(1024, 1024),)
                )
            )
            self.assertEqual(sub.raw["cost"], 10)
            self.assertEqual(sub.cost, Decimal("0.10"))
            self.assertEqual(backend.balance(), Decimal("10.00"))


class RuleTests(SimpleTestCase):
    backend = BFLBackend(
        BackendConfig(api_key="k", base_url="http://127.0.0.1:9")
    )  # nothing listens

    def assertRule(self, rule: str, request: GenerationRequest) -> RuleViolation:
        with self.assertRaises(RuleViolation) as ctx:
            self.backend.submit(request)  # submit validates first: nothing is sent
        self.assertEqual(ctx.exception.rule, rule, ctx.exception)
        self.assertEqual(ctx.exception.error_class, ErrorClass.INVALID_REQUEST)
        return ctx.exception

    def test_too_many_references(self) -> None:
        self.assertRule("max_references", req("flux-2-pro", references=(ref(),) * 9))
        self.assertRule(
            "max_references", req("flux-2-klein-4b", references=(ref(),) * 5)
        )
        self.backend.validate(req("flux-2-max", references=(ref(),) * 8))
        self.backend.validate(req("flux-2-klein-9b", references=(ref(),) * 4))

    def test_sizes(self) -> None:
        self.assertRule("dimension_step", req(width=1000))
        self.assertRule("dimensions", req(height=48))
        self.assertRule("max_megapixels", req(width=2048, height=2064))
        self.backend.validate(req(width=2048, height=2048))
        self.backend.validate(req(width=64, height=64))
        self.backend.validate(req(width=2560, height=1440))

    def test_parameter_ranges(self) -> None:
        cases = [
            ("flux-2-flex", {"steps": 0}),
            ("flux-2-flex", {"steps": 51}),
            ("flux-2-flex", {"steps": 20.5}),
            ("flux-2-flex", {"guidance": 1.4}),
            ("flux-2-flex", {"guidance": 10.5}),
            ("flux-2-flex", {"prompt_upsampling": "yes"}),
            ("flux-2-pro", {"safety_tolerance": 6}),
            ("flux-2-pro", {"safety_tolerance": -1}),
            ("flux-2-pro", {"output_format": "webp"}),
            ("flux-2-klein-4b", {"output_format": "gif"}),
        ]
        for model, params in cases:
            with self.subTest(model=model, params=params):
                error = self.assertRule("param_range", req(model, params=params))
                self.assertEqual(error.details["param"], next(iter(params)))
        self.backend.validate(
            req(
                "flux-2-flex",
                params={"steps": 1, "guidance": 10, "prompt_upsampling": True},
            )
        )
        self.backend.validate(
            req(
                "flux-2-klein-9b-preview",
                params={"output_format": "webp", "safety_tolerance": 0},
            )
        )

    def test_parameters_a_model_does_not_take(self) -> None:
        for model, param in (
            ("flux-2-pro", "steps"),
            ("flux-2-max", "guidance"),
            ("flux-2-klein-4b", "prompt_upsampling"),
        ):
            with self.subTest(model=model):
                error = self.assertRule("params", req(model, params={param: 1}))
                self.assertIn(param, error.message)

    def test_unknown_model_empty_prompt_and_bad_seed(self) -> None:
        self.assertRule("model", req("flux-2-dev"))
        self.assertRule("prompt", req(prompt="  "))
        self.assertRule("seed", req(seed="42"))
        self.assertRule("webhook_url", req(webhook_url="https://x/" + "a" * 2100))


class ConfigurationTests(SimpleTestCase):
    def test_regions_and_base_urls(self) -> None:
        self.assertEqual(resolve_base_url(""), "https://api.bfl.ai")
        self.assertEqual(resolve_base_url("eu"), "https://api.eu.bfl.ai")
        self.assertEqual(resolve_base_url("US"), "https://api.us.bfl.ai")
        self.assertEqual(
            resolve_base_url("https://proxy.example/bfl/"), "https://proxy.example/bfl"
        )
        self.assertEqual(
            BFLBackend(BackendConfig(extra={"region": "eu"})).base_url,
            "https://api.eu.bfl.ai",
        )
        self.assertEqual(set(bfl.REGIONS), {"global", "eu", "us"})

    def test_capabilities(self) -> None:
        backend = BFLBackend(BackendConfig(api_key="k"))
        caps = backend.capabilities()
        self.assertTrue(caps.calls_back)
        self.assertFalse(caps.can_cancel)
        self.assertFalse(caps.synchronous)
        self.assertEqual(
            set(caps.models),
            {
                "flux-2-pro",
                "flux-2-pro-preview",
                "flux-2-max",
                "flux-2-flex",
                "flux-2-klein-4b",
                "flux-2-klein-9b",
                "flux-2-klein-9b-preview",
            },
        )
        self.assertEqual(caps.models["flux-2-klein-4b"].max_references, 4)
        self.assertEqual(caps.models["flux-2-flex"].max_references, 8)
        self.assertFalse(backend.cancel(task_id="t", poll_url=None))

    def test_error_message_shapes(self) -> None:
        fastapi = {
            "detail": [
                {"loc": ["body", "width"], "msg": "bad width", "type": "value_error"}
            ]
        }
        self.assertEqual(transport.error_message(fastapi), "width: bad width")
        self.assertEqual(
            transport.error_message({"detail": "Not authenticated"}),
            "Not authenticated",
        )
        self.assertEqual(
            transport.error_message(
                {"error": "rate_limit_exceeded", "message": "Slow down"}
            ),
            "Slow down (rate_limit_exceeded)",
        )
        self.assertIsNone(transport.error_message(None))

    def test_retry_after_parsing(self) -> None:
        self.assertEqual(transport.parse_retry_after("5"), 5.0)
        self.assertEqual(
            transport.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0.0
        )  # in the past
        self.assertEqual(transport.parse_retry_after(None, {"retry_after": 4}), 4.0)
        self.assertIsNone(transport.parse_retry_after("soon"))


class ConcurrencyTests(SimpleTestCase):
    def test_hundreds_of_concurrent_generations(self) -> None:
        with FakeBFL(latency=0.3, concurrency=1000) as fake:
            backend = BFLBackend(fake.config())
            lock = threading.Lock()
            done: list[str] = []

            def one(i: int) -> None:
                sub = backend.submit(req(seed=i))
                while (
                    result := backend.poll(task_id=sub.task_id, poll_url=sub.poll_url)
                ).state == ProviderState.PENDING:
                    time.sleep(0.1)
                backend.fetch(result)
                with lock:
                    done.append(sub.task_id)

            with ThreadPoolExecutor(max_workers=150) as pool:
                list(pool.map(one, range(300)))
            counts = fake.counts
            self.assertEqual(len(set(done)), 300)
            self.assertEqual(counts["submissions"], 300)
            self.assertEqual(counts["deliveries"], 300)
            self.assertGreater(
                counts["polls"], 300
            )  # at least one Ready poll each, most saw Pending first
            self.assertGreater(fake.max_active, 24)


class socket_bound:
    """A TCP port that is bound but not listening: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
