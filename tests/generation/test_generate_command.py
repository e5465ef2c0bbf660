"""`manage.py generate` against the fake BFL server (real HTTP) and the offline preview backend."""

from __future__ import annotations

import io
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.test import TestCase, override_settings
from PIL import Image

from generation import caps
from generation.models import Generation, GenerationState
from tests.fakes.bfl_server import FakeBFL, make_image


class CommandTestCase(TestCase):
    fake: FakeBFL

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeBFL(latency=0.3).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        self.fake.reset()
        self.fake.latency = 0.3
        self.prefix = f"test-cmd-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=self.prefix,
            BFL_API_KEY=self.fake.api_key,
            BFL_API_URL=self.fake.base_url,
            BFL_ALLOWED_HOSTS=self.fake.allowed_hosts,
            ENGINE_RETRY_BASE=0.05,
            ENGINE_RETRY_CAP=0.2,
            ENGINE_MAX_RETRIES=2,
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        self.tmp = Path(tempfile.mkdtemp(prefix="generate-cmd-"))
        self.addCleanup(self._clear_redis)

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)

    def generate(self, *args: str) -> tuple[int, str, str]:
        if "--out" not in args:
            # Never the default (generation-<code>.<ext> in the working directory).
            args = (*args, "--out", str(self.tmp / f"out-{uuid.uuid4().hex[:6]}"))
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            call_command("generate", *args, stdout=out, stderr=err)
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    def assertOneLine(self, text: str, starts: str) -> None:  # noqa: N802
        lines = text.strip().splitlines()
        self.assertEqual(len(lines), 1, text)
        self.assertTrue(lines[0].startswith(starts), lines[0])

    def ref_file(self, name: str = "ref.png", **kwargs: Any) -> str:
        path = self.tmp / name
        path.write_bytes(make_image(**kwargs))
        return str(path)


class GenerateCommandTests(CommandTestCase):
    def test_preview_writes_a_labelled_draft(self) -> None:
        out_file = self.tmp / "draft.png"
        code, out, err = self.generate(
            "--backend", "preview", "--prompt", 'A mug that says "Hello"', "--width", "512", "--height", "384",
            "--seed", "3", "--out", str(out_file), "--ref", f"style={self.ref_file()}",
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")
        self.assertIn("queued", out)
        self.assertIn("succeeded", out)
        self.assertIn(f"wrote {out_file}", out)
        with Image.open(out_file) as image:
            self.assertEqual((image.format, image.size), ("PNG", (512, 384)))
        generation = Generation.objects.get()
        self.assertEqual(generation.state, GenerationState.SUCCEEDED)
        self.assertEqual(generation.references[0]["role"], "style")

    def test_bfl_against_the_fake_server(self) -> None:
        out_file = self.tmp / "result.jpg"
        self.fake.latency = 1.2  # still running at the first poll
        started = time.monotonic()
        code, out, err = self.generate(
            "--backend", "bfl", "--model", "flux-2-pro", "--prompt", "a red bicycle", "--width", "512",
            "--height", "512", "--seed", "9", "--ref", self.ref_file(), "--out", str(out_file),
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertLess(time.monotonic() - started, 10)
        with Image.open(out_file) as image:
            self.assertEqual((image.format, image.size), ("JPEG", (512, 512)))
        self.assertEqual(self.fake.counts["submissions"], 1)
        self.assertEqual(
            self.fake.counts["misrouted_polls"], 0
        )  # polled the exact polling_url
        self.assertIn("input_image", self.fake.bodies[0])
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("queued"), out)
        self.assertTrue(
            any(line.startswith("submitted: provider task") for line in lines), out
        )
        self.assertTrue(
            any(line.startswith("running (") for line in lines), out
        )  # with progress
        generation = Generation.objects.get()
        self.assertEqual(generation.state, GenerationState.SUCCEEDED)
        self.assertEqual(
            str(generation.actual_cost), "0.0450"
        )  # 3 credits + 1.5 for the reference

    def test_a_429_is_waited_out(self) -> None:
        self.fake.inject("rate_limit", endpoint="submit", times=1, retry_after=1)
        started = time.monotonic()
        code, out, err = self.generate(
            "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 0, err)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        self.assertIn("retrying in 1.", out)
        self.assertEqual(Generation.objects.get().rate_limited, 1)

    def test_moderated_exits_4_with_the_reasons(self) -> None:
        self.fake.inject(
            "request_moderated",
            endpoint="submit",
            reasons=["Sexual Content", "Public Figure"],
        )
        code, _out, err = self.generate(
            "--backend",
            "bfl",
            "--prompt",
            "something",
            "--width",
            "256",
            "--height",
            "256",
        )
        self.assertEqual(code, 4)
        self.assertOneLine(err, "moderated: Sexual Content, Public Figure")
        self.assertEqual(self.fake.counts["submissions"], 1)  # never retried

    def test_content_moderation_after_generating(self) -> None:
        code, _out, err = self.generate(
            "--backend",
            "bfl",
            "--prompt",
            "[fake:content_moderated] a cat",
            "--width",
            "256",
            "--height",
            "256",
        )
        self.assertEqual(code, 4)
        self.assertOneLine(err, "moderated: Derivative Works Filter")

    def test_a_bad_key_exits_3(self) -> None:
        with override_settings(BFL_API_KEY="bfl_wrong"):
            code, _out, err = self.generate(
                "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
            )
        self.assertEqual(code, 3)
        self.assertOneLine(err, "bad key: ")
        self.assertIn("403", err)

    def test_no_key_at_all_exits_3_before_anything_is_stored(self) -> None:
        with override_settings(BFL_API_KEY=""):
            code, _out, err = self.generate("--backend", "bfl", "--prompt", "x")
        self.assertEqual(code, 3)
        self.assertOneLine(err, "bad key: ")
        self.assertEqual(Generation.objects.count(), 0)

    def test_a_broken_rule_exits_2_naming_the_rule(self) -> None:
        cases = [
            (["--width", "650"], "rule broken (dimension_step): width 650"),
            (["--width", "4096", "--height", "4096"], "rule broken (max_megapixels)"),
            (["--model", "flux-2-klein-4b", *sum((["--ref", self.ref_file(f"r{i}.png")] for i in range(5)), [])],
             "rule broken (max_references)"),
            (["--model", "flux-2-pro", "--param", "steps=20"], "rule broken (params)"),
            (["--model", "flux-2-flex", "--param", "steps=99"], "rule broken (param_range)"),
            (["--model", "flux-9"], "rule broken (model)"),
        ]  # fmt: skip
        for extra, starts in cases:
            with self.subTest(starts):
                code, _out, err = self.generate(
                    "--backend", "bfl", "--prompt", "x", *extra
                )
                self.assertEqual(code, 2)
                self.assertOneLine(err, starts)
        self.assertEqual(Generation.objects.count(), 0)
        self.assertEqual(self.fake.counts["submit_requests"], 0)  # nothing was sent

    def test_a_reference_that_is_not_an_image_exits_2(self) -> None:
        bogus = self.tmp / "notes.png"
        bogus.write_text("not an image")
        code, _out, err = self.generate(
            "--backend", "preview", "--prompt", "x", "--ref", str(bogus)
        )
        self.assertEqual(code, 2)
        self.assertOneLine(err, "rule broken (references): ")
        code, _out, err = self.generate(
            "--backend",
            "preview",
            "--prompt",
            "x",
            "--ref",
            str(self.tmp / "missing.png"),
        )
        self.assertEqual(code, 2)
        self.assertOneLine(err, "rule broken (references): ")

    def test_an_unknown_backend_exits_2(self) -> None:
        code, _out, err = self.generate("--backend", "nope", "--prompt", "x")
        self.assertEqual(code, 2)
        self.assertOneLine(err, "rule broken (backend): Unknown backend 'nope'")

    def test_provider_down_exits_5_after_the_retries(self) -> None:
        self.fake.inject("unavailable", endpoint="submit", times=10)
        code, out, err = self.generate(
            "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 5)
        self.assertOneLine(err, "provider down after 2 retries: submit: HTTP 503")
        self.assertEqual(out.count("retrying in"), 2)
        self.assertEqual(Generation.objects.get().attempts, 3)

    def test_dropped_connections_while_polling_are_provider_down(self) -> None:
        self.fake.inject("drop", endpoint="poll", times=10)
        code, _out, err = self.generate(
            "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 5)
        self.assertOneLine(
            err, "provider down after 2 retries: poll: connection failed"
        )
        self.assertEqual(
            self.fake.counts["submissions"], 1
        )  # polls are retried, not the submit

    def test_a_few_expired_downloads_are_retried_and_succeed(self) -> None:
        # Two 403s per attempt (the stored URL, then the re-polled one): the third attempt wins.
        self.fake.inject("expired", endpoint="delivery", times=5)
        with override_settings(ENGINE_RETRY_BASE=0.05, ENGINE_RETRY_CAP=0.2):
            code, _out, err = self.generate(
                "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
            )
        self.assertEqual(code, 0, err)
        self.assertEqual(Generation.objects.get().state, GenerationState.SUCCEEDED)
        self.assertEqual(self.fake.counts["submissions"], 1)

    def test_an_expired_result_url_exits_with_expired(self) -> None:
        self.fake.inject("expired", endpoint="delivery", times=100)
        with override_settings(
            ENGINE_RETRY_BASE=0.05, ENGINE_RETRY_CAP=0.2, ENGINE_MAX_RETRIES=2
        ):
            code, _out, err = self.generate(
                "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
            )
        self.assertEqual(code, 1)
        self.assertOneLine(err, "expired: ")
        self.assertEqual(Generation.objects.get().state, GenerationState.EXPIRED)

    def test_a_provider_error_is_resubmitted_once_and_succeeds(self) -> None:
        self.fake.inject("error", endpoint="submit", times=1)
        code, _out, err = self.generate(
            "--backend", "bfl", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 0, err)
        generation = Generation.objects.get()
        self.assertEqual((generation.attempts, generation.retries), (2, 1))
        self.assertEqual(self.fake.counts["submissions"], 2)
