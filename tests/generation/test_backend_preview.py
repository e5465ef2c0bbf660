"""The offline preview backend: labelled, deterministic per seed, same rules as the real ones."""

from __future__ import annotations

import io
import time
from decimal import Decimal

from django.test import SimpleTestCase
from PIL import Image, ImageChops

from generation.backends.base import (
    BackendConfig,
    ErrorClass,
    GenerationRequest,
    ProviderState,
    ReferenceInput,
    RuleViolation,
)
from generation.backends.preview import text as preview_text
from generation.backends.preview.backend import PreviewBackend
from generation.backends.preview.spec import BANNER, STUDIO_MODELS
from tests.fakes.bfl_server import make_image

PALETTE = ("#1A1A2E", "#E94560", "#F5F0E1")


def ref(
    role: str = "product", colour: tuple[int, int, int] = (1, 254, 3), fmt: str = "PNG"
) -> ReferenceInput:
    return ReferenceInput(
        role, make_image(600, 400, fmt, colour), f"image/{fmt.lower()}", 600, 400
    )


def req(**kw: object) -> GenerationRequest:
    values: dict[str, object] = {
        "model": "flux-2-pro",
        "prompt": 'A launch poster with the headline "Autumn Roast" over a steaming cup, walls in #1A1A2E',
        "width": 1024,
        "height": 1024,
        "seed": 42,
        "palette": PALETTE,
    }
    values.update(kw)
    return GenerationRequest(**values)  # type: ignore[arg-type]


class PreviewTests(SimpleTestCase):
    backend = PreviewBackend(BackendConfig())

    def render(self, request: GenerationRequest) -> bytes:
        submission = self.backend.submit(request)
        self.assertIsNotNone(submission.result)
        return submission.result.result_bytes

    def image(self, data: bytes) -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    def test_synchronous_free_png_of_the_requested_size(self) -> None:
        submission = self.backend.submit(req(width=1536, height=640))
        result = submission.result
        self.assertEqual(
            (result.state, result.content_type, result.cost, result.seed),
            (ProviderState.READY, "image/png", Decimal(0), 42),
        )
        self.assertEqual(submission.cost, Decimal(0))
        self.assertEqual(self.backend.estimate_cost(req()), Decimal(0))
        self.assertEqual(self.backend.fetch(result), (result.result_bytes, "image/png"))
        image = self.image(result.result_bytes)
        self.assertEqual((image.format, image.size), ("PNG", (1536, 640)))
        caps = self.backend.capabilities()
        self.assertTrue(caps.synchronous)
        self.assertFalse(caps.calls_back)
        self.assertTrue(self.backend.is_configured())

    def test_same_request_and_seed_give_identical_bytes(self) -> None:
        first = self.render(req(references=(ref(),)))
        second = (
            PreviewBackend(BackendConfig())
            .submit(req(references=(ref(),)))
            .result.result_bytes
        )
        self.assertEqual(first, second)
        self.assertEqual(
            self.backend.submit(req()).task_id, self.backend.submit(req()).task_id
        )

    def test_another_seed_changes_layout_and_colours(self) -> None:
        one = self.image(self.render(req(seed=1))).convert("RGB")
        two = self.image(self.render(req(seed=2))).convert("RGB")
        self.assertNotEqual(
            self.backend.submit(req(seed=1)).task_id,
            self.backend.submit(req(seed=2)).task_id,
        )
        diff = (
            ImageChops.difference(one, two)
            .convert("L")
            .point(lambda v: 255 if v else 0)
        )
        changed = diff.histogram()[255] / (one.width * one.height)
        self.assertGreater(
            changed, 0.2, "a new seed should move more than a few pixels"
        )

    def test_without_a_seed_one_is_drawn_and_reported(self) -> None:
        result = self.backend.submit(req(seed=None)).result
        self.assertIsInstance(result.seed, int)
        self.assertEqual(self.render(req(seed=result.seed)), result.result_bytes)

    def test_it_is_clearly_labelled(self) -> None:
        image = self.image(self.render(req()))
        self.assertIn(BANNER, image.text["Description"])
        self.assertEqual(BANNER, "PREVIEW — not FLUX.2")
        rgb = image.convert("RGB")
        self.assertEqual(
            rgb.getpixel((2, 2)), (17, 17, 17)
        )  # the dark banner across the top
        banner = rgb.crop((0, 0, rgb.width, 1024 // 12))
        colours = {colour for _, colour in banner.getcolors(1 << 16)}
        self.assertIn((255, 214, 0), colours)  # its yellow lettering
        self.assertEqual(
            rgb.getpixel((2, rgb.height - 2)), (17, 17, 17)
        )  # and the footer

    def test_palette_swatches_and_reference_thumbnails_are_drawn(self) -> None:
        image = self.image(
            self.render(
                req(
                    references=(
                        ref("product", (1, 254, 3)),
                        ref("style", (250, 2, 250), "JPEG"),
                    )
                )
            )
        )
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 22)}
        for hex_colour in PALETTE:
            self.assertIn(preview_text.parse_colour(hex_colour), colours)
        self.assertIn((1, 254, 3), colours)  # the PNG reference, pasted as a thumbnail

    def test_quoted_text_becomes_the_headline(self) -> None:
        headline, body = preview_text.text_of(
            'Poster: "Autumn Roast" and “Since 1962”, "Autumn Roast" again'
        )
        self.assertEqual(headline, "Autumn Roast / Since 1962")
        self.assertIn("Poster", body)
        headline, body = preview_text.text_of(
            '{"scene": {"setting": "beach"}, "text": "\\"Summer sale\\""}'
        )
        self.assertEqual(headline, "Summer sale")
        self.assertIn("scene.setting: beach", body)

    def test_odd_inputs_still_render(self) -> None:
        long_prompt = "word " * 20000 + "Ünïcödé — 中文 ×"
        broken_ref = ReferenceInput("logo", b"not an image", "image/png", 10, 10)
        for request in (
            req(width=64, height=64, references=(ref(),) * 8),
            req(width=4096, height=1024, palette=()),
            req(width=1024, height=4096, prompt=long_prompt, references=(broken_ref,)),
            req(prompt="", palette=("not-a-colour", "#abc")),
        ):
            with self.subTest(size=(request.width, request.height)):
                image = self.image(self.render(request))
                self.assertEqual(image.size, (request.width, request.height))
        self.assertEqual(preview_text.printable("Café — 2×"), "Cafe - 2x")

    def test_it_is_fast(self) -> None:
        request = req(
            references=(ref(), ref("style", fmt="JPEG"), ref("background")),
            prompt="text " * 400,
        )
        self.render(request)  # warm the font cache
        started = time.perf_counter()
        self.render(req(seed=7, references=request.references, prompt=request.prompt))
        self.assertLess(time.perf_counter() - started, 0.5)

    def test_every_studio_model_is_accepted(self) -> None:
        for model in STUDIO_MODELS:
            self.backend.validate(
                req(model=model, references=(ref(),) * 8, width=2048, height=2048)
            )

    def test_rules(self) -> None:
        cases = [
            ("max_references", req(references=(ref(),) * 9)),
            ("dimension_step", req(width=1000)),
            ("dimensions", req(height=32)),
            ("max_megapixels", req(width=2064, height=2048)),
            ("model", req(model="flux-3")),
            ("param_range", req(model="flux-2-flex", params={"steps": 60})),
            ("param_range", req(params={"safety_tolerance": 9})),
            ("params", req(params={"negative_prompt": "ugly"})),
        ]
        for rule, request in cases:
            with self.subTest(rule=rule):
                with self.assertRaises(RuleViolation) as ctx:
                    self.backend.submit(request)
                self.assertEqual(ctx.exception.rule, rule)

    def test_poll_has_nothing_to_find(self) -> None:
        result = self.backend.poll(task_id="preview-x", poll_url=None)
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.NOT_FOUND),
        )
