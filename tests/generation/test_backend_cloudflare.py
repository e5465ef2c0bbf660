"""Contract tests of the Cloudflare Workers AI backend against the fake over real HTTP (no database)."""

from __future__ import annotations

import io
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
)
from generation.backends.cloudflare.backend import BACKEND_CLASS, CloudflareBackend
from generation.backends.transport import parse_retry_after
from tests.fakes.cloudflare_server import FakeCloudflare, make_image


def ref(width: int, height: int, fmt: str = "PNG") -> ReferenceInput:
    return ReferenceInput(
        role="product",
        content=make_image(width, height, fmt),
        content_type=f"image/{fmt.lower()}",
        width=width,
        height=height,
        name=f"ref-{width}x{height}",
    )


def request(model: str = "flux-2-dev", **kwargs: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "a red bicycle on a beach",
        "width": 1024,
        "height": 768,
        "seed": 42,
    }
    values.update(kwargs)
    return GenerationRequest(model=model, **values)  # type: ignore[arg-type]


class CloudflareTestCase(SimpleTestCase):
    fake: FakeCloudflare

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeCloudflare().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        self.fake.reset()
        self.backend = CloudflareBackend(self.fake.config())

    def assertFails(
        self,
        error_class: ErrorClass,
        req: GenerationRequest | None = None,
        **kwargs: object,
    ) -> BackendError:
        with self.assertRaises(BackendError) as caught:
            self.backend.submit(req or request())
        error = caught.exception
        self.assertEqual(error.error_class, error_class, str(error))
        for name, value in kwargs.items():
            self.assertEqual(getattr(error, name), value, name)
        return error


class ModelMappingTests(CloudflareTestCase):
    def test_it_maps_the_studio_vocabulary_onto_workers_ai_ids(self) -> None:
        models = self.backend.capabilities().models
        self.assertEqual(
            models["flux-2-dev"].provider_model, "@cf/black-forest-labs/flux-2-dev"
        )
        self.assertEqual(
            models["flux-2-klein-4b"].provider_model,
            "@cf/black-forest-labs/flux-2-klein-4b",
        )
        self.assertEqual(
            models["flux-2-klein-9b"].provider_model,
            "@cf/black-forest-labs/flux-2-klein-9b",
        )
        self.assertEqual(
            models["flux-2-flex"].provider_model, "black-forest-labs/flux-2-flex"
        )
        self.assertEqual(
            models["flux-2-pro-preview"].provider_model,
            "black-forest-labs/flux-2-pro-preview",
        )

    def test_it_is_synchronous_and_cannot_cancel(self) -> None:
        caps = self.backend.capabilities()
        self.assertTrue(caps.synchronous)
        self.assertFalse(caps.can_cancel)
        self.assertFalse(caps.calls_back)
        self.assertFalse(self.backend.cancel(task_id="x", poll_url=None))

    def test_it_refuses_models_it_cannot_serve(self) -> None:
        for model in ("flux-2-max", "flux-2-pro", "flux-2-klein-9b-preview"):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(model))
            self.assertEqual(caught.exception.rule, "model")
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_the_module_exposes_its_backend_class(self) -> None:
        self.assertIs(BACKEND_CLASS, CloudflareBackend)
        self.assertEqual(CloudflareBackend.name, "cloudflare")


class SubmitTests(CloudflareTestCase):
    def test_it_posts_multipart_and_returns_the_finished_image(self) -> None:
        submission = self.backend.submit(request())
        result = submission.result
        assert result is not None
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(result.content_type, "image/jpeg")
        self.assertEqual(result.seed, 42)
        with Image.open(io.BytesIO(result.result_bytes or b"")) as image:
            self.assertEqual(image.size, (1024, 768))
        self.assertTrue(submission.task_id.endswith("-FAKE"))  # the cf-ray header
        data, mime = self.backend.fetch(result)
        self.assertEqual((data, mime), (result.result_bytes, "image/jpeg"))

        sent = self.fake.requests[-1]
        self.assertEqual(sent["model"], "flux-2-dev")
        self.assertEqual(
            sent["fields"],
            {
                "prompt": "a red bicycle on a beach",
                "width": "1024",
                "height": "768",
                "steps": "25",
                "seed": "42",
            },
        )
        self.assertTrue(
            sent["headers"]["content-type"].startswith("multipart/form-data")
        )
        self.assertEqual(
            sent["headers"]["authorization"], f"Bearer {self.fake.api_token}"
        )

    def test_a_prompt_only_call_is_still_multipart(self) -> None:
        self.backend.submit(request(seed=None))
        sent = self.fake.requests[-1]
        self.assertTrue(
            sent["headers"]["content-type"].startswith("multipart/form-data")
        )
        self.assertNotIn("seed", sent["fields"])
        self.assertEqual(sent["files"], {})

    def test_it_sends_steps_and_guidance_for_dev(self) -> None:
        self.backend.submit(request(params={"steps": 12, "guidance": 3.5}))
        fields = self.fake.requests[-1]["fields"]
        self.assertEqual((fields["steps"], fields["guidance"]), ("12", "3.5"))

    def test_klein_gets_no_steps_and_refuses_them(self) -> None:
        self.backend.submit(request("flux-2-klein-4b"))
        self.assertEqual(self.fake.requests[-1]["model"], "flux-2-klein-4b")
        self.assertNotIn("steps", self.fake.requests[-1]["fields"])
        for params in ({"steps": 4}, {"guidance": 3.0}):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request("flux-2-klein-9b", params=params))
            self.assertEqual(caught.exception.rule, "params")

    def test_poll_has_nothing_to_ask(self) -> None:
        with self.assertRaises(BackendError) as caught:
            self.backend.poll(task_id="x", poll_url=None)
        self.assertEqual(caught.exception.error_class, ErrorClass.NOT_FOUND)


class ReferenceTests(CloudflareTestCase):
    def test_it_sends_up_to_four_references_downscaling_large_ones(self) -> None:
        small = ref(300, 200)
        refs = (ref(1200, 800), small, ref(512, 512, "JPEG"), ref(400, 2000))
        submission = self.backend.submit(request(references=refs))
        files = self.fake.requests[-1]["files"]
        self.assertEqual(
            sorted(files),
            ["input_image_0", "input_image_1", "input_image_2", "input_image_3"],
        )
        self.assertEqual(
            (files["input_image_0"]["width"], files["input_image_0"]["height"]),
            (512, 341),
        )
        self.assertEqual(files["input_image_0"]["content_type"], "image/png")
        # It fits: sent untouched.
        self.assertEqual(files["input_image_1"]["bytes"], small.content)
        self.assertEqual(files["input_image_2"]["content_type"], "image/jpeg")
        self.assertEqual(
            (files["input_image_3"]["width"], files["input_image_3"]["height"]),
            (102, 512),
        )
        resized = [r["resized"] for r in submission.raw["references"]]
        self.assertEqual(resized, [True, False, False, True])

    def test_it_refuses_a_fifth_reference_before_sending(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(
                request(references=tuple(ref(64, 64) for _ in range(5)))
            )
        self.assertEqual(caught.exception.rule, "max_references")
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_an_undecodable_reference_is_an_invalid_request(self) -> None:
        broken = ReferenceInput(
            role="style",
            content=b"not an image",
            content_type="image/png",
            width=10,
            height=10,
        )
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST, request(references=(broken,))
        )
        self.assertFalse(error.retryable)
        self.assertEqual(self.fake.counts["requests"], 0)


class SizeRuleTests(CloudflareTestCase):
    def test_it_enforces_256_to_1920_per_side(self) -> None:
        for width, height, rule in (
            (240, 512, "dimensions"),
            (1936, 512, "dimensions"),
            (512, 2048, "dimensions"),
        ):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(width=width, height=height))
            self.assertEqual(caught.exception.rule, rule)
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_it_wants_multiples_of_16(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(request(width=1000))
        self.assertEqual(caught.exception.rule, "dimension_step")

    def test_the_extremes_are_accepted(self) -> None:
        self.backend.submit(request(width=1920, height=256))
        self.backend.submit(request(width=256, height=1920))
        self.assertEqual(self.fake.counts["runs"], 2)

    def test_it_checks_parameter_ranges(self) -> None:
        for params in ({"steps": 0}, {"steps": 51}, {"guidance": 11.0}, {"steps": 2.5}):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(params=params))
            self.assertEqual(caught.exception.rule, "param_range")

    def test_it_refuses_an_empty_prompt(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(request(prompt="  "))
        self.assertEqual(caught.exception.rule, "prompt")


class PricingTests(CloudflareTestCase):
    def test_dev_matches_the_documented_example(self) -> None:
        # docs/providers.md §4.1: 1024×1024, 25 steps, no refs: 4 output tiles × 25 × $0.00041 = $0.041.
        self.assertEqual(
            self.backend.estimate_cost(request(width=1024, height=1024)),
            Decimal("0.041"),
        )

    def test_dev_counts_input_tiles_per_step_after_downscaling(self) -> None:
        cost = self.backend.estimate_cost(
            request(
                width=1024,
                height=1024,
                params={"steps": 10},
                references=(ref(2000, 2000), ref(100, 100)),
            )
        )
        self.assertEqual(cost, (2 * Decimal("0.00021") + 4 * Decimal("0.00041")) * 10)

    def test_partial_tiles_count_whole(self) -> None:
        # 1024×768 covers 2×2 tiles.
        self.assertEqual(
            self.backend.estimate_cost(request(width=1024, height=768)),
            4 * 25 * Decimal("0.00041"),
        )

    def test_klein_4b_is_per_tile_without_steps(self) -> None:
        cost = self.backend.estimate_cost(
            request(
                "flux-2-klein-4b", width=1024, height=1024, references=(ref(512, 512),)
            )
        )
        self.assertEqual(cost, Decimal("0.000059") + 4 * Decimal("0.000287"))

    def test_klein_9b_is_per_megapixel(self) -> None:
        self.assertEqual(
            self.backend.estimate_cost(
                request("flux-2-klein-9b", width=1024, height=1024)
            ),
            Decimal("0.015"),
        )
        cost = self.backend.estimate_cost(
            request(
                "flux-2-klein-9b", width=1920, height=1080, references=(ref(800, 800),)
            )
        )
        self.assertEqual(cost, Decimal("0.015") + Decimal("0.002") + Decimal("0.002"))

    def test_proxied_models_use_bfl_list_prices(self) -> None:
        self.assertEqual(
            self.backend.estimate_cost(request("flux-2-flex", width=1024, height=1024)),
            Decimal("0.05"),
        )
        self.assertEqual(
            self.backend.estimate_cost(
                request("flux-2-pro-preview", width=2048, height=2048)
            ),
            Decimal("0.075"),
        )


class ErrorMappingTests(CloudflareTestCase):
    def test_429_is_rate_limited_with_retry_after(self) -> None:
        self.fake.inject("rate_limit", retry_after=7)
        self.assertFails(
            ErrorClass.RATE_LIMITED, retryable=True, retry_after=7.0, status_code=429
        )
        self.fake.inject("rate_limit", retry_after=30, header="date")
        error = self.assertFails(ErrorClass.RATE_LIMITED)
        assert error.retry_after is not None
        self.assertTrue(25 <= error.retry_after <= 30, error.retry_after)
        self.fake.inject("rate_limit", header="none")
        self.assertFails(ErrorClass.RATE_LIMITED, retry_after=None)

    def test_5xx_is_retryable(self) -> None:
        self.fake.inject("server_error")
        error = self.assertFails(
            ErrorClass.PROVIDER_ERROR, retryable=True, status_code=500
        )
        self.assertIn("Internal server error (code 3043)", error.message)
        self.fake.inject("unavailable")
        self.assertFails(
            ErrorClass.PROVIDER_ERROR, retryable=True, status_code=503, retry_after=1.0
        )

    def test_auth_failures(self) -> None:
        self.fake.inject("unauthorized")
        self.assertFails(ErrorClass.AUTH, retryable=False, status_code=401)
        self.fake.inject("forbidden")
        self.assertFails(ErrorClass.AUTH, status_code=403)
        self.backend = CloudflareBackend(
            BackendConfig(
                api_key="wrong",
                base_url=self.fake.base_url,
                extra={"account_id": self.fake.account_id},
            )
        )
        error = self.assertFails(ErrorClass.AUTH, status_code=403)
        self.assertIn("Authentication error (code 10000)", error.message)

    def test_a_wrong_account_says_so(self) -> None:
        self.backend = CloudflareBackend(self.fake.config(account_id="nope"))
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST, status_code=404, retryable=False
        )
        self.assertIn("CLOUDFLARE_ACCOUNT_ID", error.message)

    def test_4xx_is_an_invalid_request_with_cloudflares_message(self) -> None:
        self.fake.inject("bad_request")
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST, retryable=False, status_code=400
        )
        self.assertIn("oneOf at '/' not met (code 5006)", error.message)
        self.assertEqual(
            error.details["errors"],
            [{"code": 5006, "message": "Error: oneOf at '/' not met"}],
        )

    def test_the_fake_rejects_what_the_real_api_would(self) -> None:
        # Bypass our rule check to prove the fake's own validation answers in Cloudflare's envelope.
        with mock.patch.object(CloudflareBackend, "validate"):
            error = self.assertFails(ErrorClass.INVALID_REQUEST, request(width=2048))
        self.assertIn("width: must be an integer between 256 and 1920", error.message)

    def test_moderation_and_quota(self) -> None:
        self.fake.inject("moderation")
        self.assertFails(ErrorClass.MODERATED, retryable=False)
        self.fake.inject("quota")
        self.assertFails(ErrorClass.QUOTA, retryable=False)

    def test_transport_faults(self) -> None:
        self.fake.inject("drop")
        self.assertFails(ErrorClass.NETWORK, retryable=True)
        self.backend = CloudflareBackend(self.fake.config(read_timeout="0.3"))
        self.fake.inject("slow", seconds=1.0)
        self.assertFails(ErrorClass.TIMEOUT, retryable=True)
        # Cloudflare still generates (and bills) the image after we gave up.
        deadline = time.monotonic() + 5
        while self.fake.counts["runs"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.fake.counts["runs"], 1)

    def test_a_slow_answer_within_the_timeout_succeeds(self) -> None:
        self.fake.inject("slow", seconds=0.3)
        result = self.backend.submit(request()).result
        self.assertEqual(result and result.state, ProviderState.READY)

    def test_unusable_answers_are_bad_results(self) -> None:
        for kind in ("malformed", "wrong_content_type", "bad_base64", "not_image"):
            self.fake.inject(kind)
            self.assertFails(ErrorClass.BAD_RESULT, retryable=True)

    def test_an_error_envelope_under_200_is_a_provider_error(self) -> None:
        self.fake.inject("envelope_error")
        self.assertFails(ErrorClass.PROVIDER_ERROR, retryable=True)

    def test_an_unreachable_server_is_a_network_error(self) -> None:
        with FakeCloudflare() as gone:
            config = gone.config()
        self.backend = CloudflareBackend(config)
        self.assertFails(ErrorClass.NETWORK, retryable=True)

    def test_retry_after_accepts_seconds_and_dates(self) -> None:
        self.assertEqual(parse_retry_after("12"), 12.0)
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0.0)
        self.assertIsNone(parse_retry_after("soon"))
        self.assertIsNone(parse_retry_after(None))


class ConfigurationTests(CloudflareTestCase):
    def test_it_needs_a_token_and_an_account(self) -> None:
        backend = CloudflareBackend(BackendConfig(base_url=self.fake.base_url))
        self.assertFalse(backend.is_configured())
        with self.assertRaises(BackendError) as caught:
            backend.submit(request())
        self.assertEqual(caught.exception.error_class, ErrorClass.AUTH)
        self.assertIn("CLOUDFLARE_API_TOKEN", caught.exception.message)
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_it_falls_back_to_the_settings(self) -> None:
        with override_settings(**self.fake.env()):
            backend = CloudflareBackend(accounts.settings_config("cloudflare"))
        self.assertTrue(backend.is_configured())
        result = backend.submit(request()).result
        self.assertEqual(result and result.state, ProviderState.READY)

    def test_the_default_base_url_is_cloudflares(self) -> None:
        backend = CloudflareBackend(
            BackendConfig(api_key="t", extra={"account_id": "acc"})
        )
        spec = backend.capabilities().models["flux-2-dev"]
        self.assertEqual(
            backend.run_url(spec),
            "https://api.cloudflare.com/client/v4/accounts/acc/ai/run/@cf/black-forest-labs/flux-2-dev",
        )


class ProxiedModelTests(CloudflareTestCase):
    def test_it_posts_json_and_downloads_the_result_url(self) -> None:
        params = {
            "steps": 30,
            "guidance": 5.0,
            "prompt_upsampling": False,
            "output_format": "png",
            "safety_tolerance": 2,
        }
        submission = self.backend.submit(
            request("flux-2-flex", width=1024, height=1024, params=params)
        )
        result = submission.result
        assert result is not None
        self.assertEqual(result.state, ProviderState.READY)
        self.assertTrue(
            result.result_url
            and result.result_url.startswith(self.fake.root_url + "/delivery/")
        )
        self.assertEqual(
            self.fake.requests[-1]["json"],
            {
                "model": "black-forest-labs/flux-2-flex",
                "input": {
                    "prompt": "a red bicycle on a beach",
                    "width": 1024,
                    "height": 1024,
                    "seed": 42,
                    **params,
                },
            },
        )
        data, mime = self.backend.fetch(result)
        self.assertEqual(mime, "image/jpeg")
        self.assertEqual(self.fake.counts["deliveries"], 1)

    def test_proxied_models_take_no_references(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(
                request("flux-2-pro-preview", references=(ref(64, 64),))
            )
        self.assertEqual(caught.exception.rule, "max_references")

    def test_a_failed_or_moderated_state_is_a_failed_result(self) -> None:
        self.fake.inject("failed")
        result = self.backend.submit(request("flux-2-flex")).result
        assert result is not None and result.error is not None
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.PROVIDER_ERROR),
        )
        self.fake.inject("moderated")
        result = self.backend.submit(request("flux-2-flex")).result
        assert result is not None and result.error is not None
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.MODERATED),
        )

    def test_an_expired_or_broken_download(self) -> None:
        result = self.backend.submit(request("flux-2-pro-preview")).result
        assert result is not None
        self.fake.inject("expired")
        with self.assertRaises(BackendError) as caught:
            self.backend.fetch(result)
        self.assertEqual(caught.exception.error_class, ErrorClass.EXPIRED)
        self.fake.inject("malformed", endpoint="delivery")
        with self.assertRaises(BackendError) as caught:
            self.backend.fetch(result)
        self.assertEqual(caught.exception.error_class, ErrorClass.BAD_RESULT)

    def test_result_urls_must_be_on_known_hosts(self) -> None:
        for url in (
            "https://evil.example.com/a.jpeg",
            "http://delivery-eu.bfl.ai/a.jpeg",
            "file:///etc/passwd",
        ):
            with self.assertRaises(BackendError) as caught:
                self.backend.fetch(PollResult(ProviderState.READY, result_url=url))
            self.assertEqual(caught.exception.error_class, ErrorClass.BAD_RESULT, url)
        # BFL's delivery host over https passes.
        self.backend._check_result_url(
            "https://delivery-eu.bfl.ai/results/a.jpeg?sig=x"
        )
