"""`manage.py generate --backend NAME` against the fake fal, Replicate, Cloudflare and ComfyUI
servers (real HTTP on 127.0.0.1): an image is written, and faults end with the documented exit
status and one line. Each backend is configured the way an operator would: its environment
variables (FAL_KEY, REPLICATE_API_TOKEN, CLOUDFLARE_API_TOKEN + CLOUDFLARE_ACCOUNT_ID, COMFYUI_URL).
"""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

from django.core.management import call_command
from django.test import TestCase, override_settings
from PIL import Image

from generation import caps
from generation.models import Generation, GenerationState
from tests.fakes.bfl_server import make_image
from tests.fakes.cloudflare_server import FakeCloudflare
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.fal_server import FakeFal
from tests.fakes.replicate_server import FakeReplicate

S = GenerationState


class BackendCommandTestCase(TestCase):
    """Starts one fake per class, points the environment at it, runs the command in-process."""

    fake_class: ClassVar[type]
    fake: Any

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = cls.make_fake().start()

    @classmethod
    def make_fake(cls) -> Any:
        return cls.fake_class()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        self.fake.reset()
        self.prefix = f"test-cmdb-{uuid.uuid4().hex[:10]}"
        overrides = override_settings(
            ENGINE_REDIS_PREFIX=self.prefix,
            ENGINE_RETRY_BASE=0.05,
            ENGINE_RETRY_CAP=0.2,
            ENGINE_MAX_RETRIES=2,
            ENGINE_POLL_INITIAL=0.1,
            ENGINE_POLL_MAX=0.5,
        )
        overrides.enable()
        self.addCleanup(overrides.disable)
        env = override_settings(**self.fake.env())
        env.enable()
        self.addCleanup(env.disable)
        self.tmp = Path(tempfile.mkdtemp(prefix="generate-cmd-backends-"))
        self.addCleanup(self._clear_redis)

    def _clear_redis(self) -> None:
        client = caps.redis_client()
        if client is not None and (keys := list(client.scan_iter(f"{self.prefix}:*"))):
            client.delete(*keys)

    def generate(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            call_command("generate", *args, stdout=out, stderr=err)
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    def ref_file(self, name: str = "ref.png") -> str:
        path = self.tmp / name
        path.write_bytes(make_image(width=640, height=480, fmt="PNG"))
        return str(path)

    def assertWrote(  # noqa: N802
        self, out_file: Path, size: tuple[int, int], code: int, err: str
    ) -> None:
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")
        with Image.open(out_file) as image:
            self.assertEqual(image.size, size)
        generation = Generation.objects.get()
        self.assertEqual(generation.state, S.SUCCEEDED)
        self.assertTrue(generation.asset.file.name)

    def assertOneLine(self, text: str, starts: str) -> None:  # noqa: N802
        lines = text.strip().splitlines()
        self.assertEqual(len(lines), 1, text)
        self.assertTrue(lines[0].startswith(starts), lines[0])


class FalCommandTests(BackendCommandTestCase):
    fake_class = FakeFal

    @classmethod
    def make_fake(cls) -> Any:
        return FakeFal(latency=0.3)

    def test_text_to_image_and_edit_with_a_reference(self) -> None:
        out_file = self.tmp / "fal.jpg"
        code, out, err = self.generate(
            "--backend", "fal", "--model", "flux-2-pro", "--prompt", "a red bicycle",
            "--width", "512", "--height", "384", "--seed", "5", "--ref", self.ref_file(),
            "--out", str(out_file),
        )  # fmt: skip
        self.assertWrote(out_file, (512, 384), code, err)
        self.assertIn("queued", out)
        self.assertIn("on fal/flux-2-pro", out)
        self.assertTrue(
            any(
                line.startswith("submitted: provider task") for line in out.splitlines()
            )
        )
        self.assertEqual(self.fake.counts["submissions"], 1)
        self.assertIn(
            "image_urls", self.fake.bodies[0]
        )  # the /edit endpoint with the reference

    def test_a_bad_key_exits_3(self) -> None:
        with override_settings(**{"FAL_KEY": "wrong-key"}):
            code, _out, err = self.generate(
                "--backend", "fal", "--prompt", "x", "--width", "256", "--height", "256"
            )
        self.assertEqual(code, 3)
        self.assertOneLine(err, "bad key: ")

    def test_a_content_policy_refusal_exits_4(self) -> None:
        self.fake.inject("content_policy", endpoint="submit", categories=["violence"])
        code, _out, err = self.generate(
            "--backend", "fal", "--prompt", "x", "--width", "256", "--height", "256"
        )
        self.assertEqual(code, 4)
        self.assertOneLine(err, "moderated: ")
        self.assertEqual(self.fake.counts["submissions"], 1)


class ReplicateCommandTests(BackendCommandTestCase):
    fake_class = FakeReplicate

    @classmethod
    def make_fake(cls) -> Any:
        return FakeReplicate(latency=0.3)

    def test_pro_with_a_reference(self) -> None:
        out_file = self.tmp / "replicate.jpg"
        code, out, err = self.generate(
            "--backend", "replicate", "--model", "flux-2-pro", "--prompt", "a blue mug",
            "--width", "512", "--height", "512", "--ref", self.ref_file(), "--out", str(out_file),
        )  # fmt: skip
        self.assertWrote(out_file, (512, 512), code, err)
        self.assertIn("on replicate/flux-2-pro", out)
        self.assertIn("input_images", self.fake.bodies[0])

    def test_klein_takes_images_and_answers_a_list(self) -> None:
        out_file = self.tmp / "klein.jpg"
        code, _out, err = self.generate(
            "--backend", "replicate", "--model", "flux-2-klein-4b", "--prompt", "a mug",
            "--width", "1024", "--height", "1024", "--ref", self.ref_file(), "--out", str(out_file),
        )  # fmt: skip
        self.assertWrote(out_file, (1024, 1024), code, err)
        self.assertIn("images", self.fake.bodies[0])

    def test_a_size_replicate_would_round_is_refused_before_sending(self) -> None:
        code, _out, err = self.generate(
            "--backend",
            "replicate",
            "--prompt",
            "x",
            "--width",
            "528",
            "--height",
            "512",
        )
        self.assertEqual(code, 2)
        self.assertOneLine(err, "rule broken (")
        self.assertEqual(self.fake.counts["submit_requests"], 0)

    def test_a_failed_prediction_exits_non_zero_with_the_reason(self) -> None:
        self.fake.inject("nsfw", endpoint="submit")
        code, _out, err = self.generate(
            "--backend",
            "replicate",
            "--prompt",
            "x",
            "--width",
            "512",
            "--height",
            "512",
        )
        self.assertEqual(code, 4)
        self.assertOneLine(err, "moderated: ")


class CloudflareCommandTests(BackendCommandTestCase):
    fake_class = FakeCloudflare

    def test_dev_is_synchronous(self) -> None:
        out_file = self.tmp / "cf.jpg"
        code, out, err = self.generate(
            "--backend", "cloudflare", "--prompt", "a green kettle", "--width", "512",
            "--height", "512", "--ref", self.ref_file(), "--out", str(out_file),
        )  # fmt: skip
        self.assertWrote(out_file, (512, 512), code, err)
        self.assertIn("on cloudflare/flux-2-dev", out)  # its first model: no [pro] here
        self.assertEqual(
            Generation.objects.get().poll_count, 1
        )  # no poll: the answer was the image

    def test_a_bad_token_exits_3(self) -> None:
        self.fake.inject("unauthorized", endpoint="run")
        code, _out, err = self.generate(
            "--backend",
            "cloudflare",
            "--prompt",
            "x",
            "--width",
            "512",
            "--height",
            "512",
        )
        self.assertEqual(code, 3)
        self.assertOneLine(err, "bad key: ")

    def test_provider_down_exits_5(self) -> None:
        self.fake.inject("server_error", endpoint="run", times=10)
        code, _out, err = self.generate(
            "--backend",
            "cloudflare",
            "--prompt",
            "x",
            "--width",
            "512",
            "--height",
            "512",
        )
        self.assertEqual(code, 5)
        self.assertOneLine(err, "provider down after 2 retries")

    def test_no_account_id_exits_3_before_anything_is_stored(self) -> None:
        with override_settings(**{"CLOUDFLARE_ACCOUNT_ID": ""}):
            code, _out, err = self.generate(
                "--backend",
                "cloudflare",
                "--prompt",
                "x",
                "--width",
                "512",
                "--height",
                "512",
            )
        self.assertEqual(code, 3)
        self.assertOneLine(err, "bad key: ")
        self.assertEqual(Generation.objects.count(), 0)


class ComfyUICommandTests(BackendCommandTestCase):
    fake_class = FakeComfyUI

    @classmethod
    def make_fake(cls) -> Any:
        return FakeComfyUI(latency=0.3)

    def test_dev_with_a_reference_latent(self) -> None:
        out_file = self.tmp / "comfy.png"
        code, out, err = self.generate(
            "--backend", "comfyui", "--prompt", "a yellow lamp", "--width", "512",
            "--height", "512", "--seed", "3", "--ref", self.ref_file(), "--out", str(out_file),
        )  # fmt: skip
        self.assertWrote(out_file, (512, 512), code, err)
        self.assertIn("on comfyui/flux-2-dev", out)
        self.assertEqual(self.fake.counts["prompts"], 1)
        graph = next(iter(self.fake.graphs.values()))
        kinds = [node["class_type"] for node in graph.values()]
        self.assertEqual(kinds.count("ReferenceLatent"), 1)

    def test_an_execution_error_is_explained(self) -> None:
        self.fake.inject(
            "execution_error", endpoint="prompt", exception_message="CUDA error: boom"
        )
        code, _out, err = self.generate(
            "--backend", "comfyui", "--prompt", "x", "--width", "512", "--height", "512"
        )
        self.assertNotEqual(code, 0)
        self.assertOneLine(err, "")
        self.assertIn("CUDA error: boom", err)

    def test_an_unreachable_server_is_provider_down(self) -> None:
        with override_settings(**{"COMFYUI_URL": "http://127.0.0.1:9"}):
            code, _out, err = self.generate(
                "--backend",
                "comfyui",
                "--prompt",
                "x",
                "--width",
                "512",
                "--height",
                "512",
            )
        self.assertEqual(code, 5)
        self.assertOneLine(err, "provider down after 2 retries")
