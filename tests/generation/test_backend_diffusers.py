"""The local GPU backend (diffusers) in the studio's venv: rules, price, configuration, routing.

The studio runs on Python >= 3.12, where this machine has no torch: the pipeline code itself is
tested in .venv-ml (Python 3.11, CPU torch) by tests/ml. Here the backend must import and explain
itself without torch, and the end-to-end call through the Backend runs only where torch is
installed for this interpreter (a GPU worker's venv with the `diffusers` extra); otherwise it is
skipped with the reason (pytest -rs shows it).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from unittest import mock

from django.test import SimpleTestCase, override_settings
from PIL import Image

from generation import accounts, tasks
from generation.backends import diffusers_pipeline, diffusers_weights, registry
from generation.backends.base import (
    BackendConfig,
    BackendError,
    ErrorClass,
    GenerationRequest,
    ProviderState,
    ReferenceInput,
    RuleViolation,
)
from generation.backends.diffusers import DiffusersBackend
from generation.models import Generation, GenerationState
from tests.generation.test_engine_state import EngineTestCase, ScriptedBackend
from tests.generation.test_generate_command import CommandTestCase

ROOT = Path(__file__).resolve().parents[2]


def unset_settings() -> override_settings:
    """The operator's diffusers settings, all empty (whatever this machine's environment says)."""
    return override_settings(
        FLUX2_MODEL_PATH="",
        FLUX2_MODELS="",
        FLUX2_OFFLOAD="",
        DIFFUSERS_PRICE_PER_IMAGE="",
    )


PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HAS_TORCH = all(
    importlib.util.find_spec(name) is not None
    for name in ("torch", "diffusers", "transformers")
)
NO_TORCH = (
    f"torch is not installed for Python {PYTHON} here; the pipeline code is exercised "
    "in .venv-ml by tests/ml"
)
CLASSES = {
    "flux-2-dev": "Flux2Pipeline",
    "flux-2-klein-4b": "Flux2KleinPipeline",
    "flux-2-klein-9b": "Flux2KleinPipeline",
}


def weights_folder(root: Path, *models: str, **names: str) -> Path:
    """A FLUX2_MODEL_PATH with a model_index.json per model (no weights: enough to scan)."""
    for model in models:
        folder = root / names.get(model.replace("-", "_"), model)
        folder.mkdir(parents=True)
        index = {"_class_name": CLASSES[model]}
        if "klein" in model:
            index["is_distilled"] = True
        (folder / "model_index.json").write_text(json.dumps(index))
    return root


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def ref(width: int = 512, height: int = 512) -> ReferenceInput:
    return ReferenceInput("product", png(width, height), "image/png", width, height)


def req(**kw: object) -> GenerationRequest:
    values: dict[str, object] = {
        "model": "flux-2-klein-4b",
        "prompt": "a ceramic mug on a walnut table, morning light",
        "width": 1024,
        "height": 768,
        "seed": 7,
    }
    values.update(kw)
    return GenerationRequest(**values)  # type: ignore[arg-type]


class TempDirTestCase(SimpleTestCase):
    def setUp(self) -> None:
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        # The operator's settings must not configure the backend behind a test's back.
        unset = unset_settings()
        unset.enable()
        self.addCleanup(unset.disable)

    def backend(self, path: Path | str = "", **extra: str) -> DiffusersBackend:
        return DiffusersBackend(BackendConfig(base_url=str(path), extra=extra))

    def configured(self, *models: str) -> DiffusersBackend:
        """A backend whose folder holds `models`, as if torch were installed here."""
        patcher = mock.patch.object(
            diffusers_pipeline, "runtime_problem", return_value=None
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        return self.backend(weights_folder(self.tmp / "weights", *models))


class ModuleTests(SimpleTestCase):
    def test_the_backend_imports_without_torch(self) -> None:
        code = (
            "import sys; import generation.backends.diffusers as d; "
            "d.DiffusersBackend(d.BackendConfig()).capabilities(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') "
            "if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "FLUX2_MODEL_PATH": ""},
        )
        self.assertEqual(out.stdout.strip(), "[]")

    def test_the_pipeline_modules_are_python_311_and_know_no_django(self) -> None:
        # .venv-ml runs them on Python 3.11 (ruff checks them at py311 too: pyproject). The
        # pipeline imports one sibling, the weights scanner, which follows the same rules.
        for path in (
            ROOT / "generation/backends/diffusers_pipeline.py",
            ROOT / "generation/backends/diffusers_weights.py",
            ROOT / "tests/ml/tiny_flux2.py",
        ):
            tree = ast.parse(path.read_text(), str(path), feature_version=(3, 11))
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
            }
            self.assertNotIn("django", imported, path)
            self.assertNotIn("generation", imported - {""}, path)
            siblings = {
                node.module
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level
            }
            self.assertLessEqual(siblings, {"diffusers_weights"}, path)

    @override_settings(
        FLUX2_MODEL_PATH="/srv/flux2",
        FLUX2_MODELS="flux-2-dev",
        DIFFUSERS_PRICE_PER_IMAGE="0.002",
        FLUX2_OFFLOAD="model",
    )
    def test_it_is_registered_and_reads_the_settings(self) -> None:
        self.assertIs(registry.BACKENDS["diffusers"], DiffusersBackend)
        config = accounts.settings_config("diffusers")
        backend = registry.get_backend("diffusers", config)
        self.assertEqual(config.base_url, "/srv/flux2")
        self.assertEqual(
            dict(config.extra),
            {"models": "flux-2-dev", "price_per_image": "0.002", "offload": "model"},
        )
        assert isinstance(backend, DiffusersBackend)
        self.assertEqual(backend.model_path, "/srv/flux2")
        self.assertEqual(backend.offload, "model")
        self.assertEqual(backend.estimate_cost(req()), Decimal("0.002"))


class ConfigurationTests(TempDirTestCase):
    def test_without_a_path_it_is_not_configured_and_says_which_variable(self) -> None:
        backend = self.backend()
        self.assertFalse(backend.is_configured())
        self.assertIn("FLUX2_MODEL_PATH is not set", backend.configuration_problem())
        # Unconfigured it still names what it could serve, so rules and messages apply.
        self.assertEqual(
            set(backend.capabilities().models),
            {"flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b"},
        )

    def test_a_missing_folder_is_named(self) -> None:
        backend = self.backend(self.tmp / "nowhere")
        self.assertFalse(backend.is_configured())
        self.assertIn(
            f"FLUX2_MODEL_PATH={self.tmp / 'nowhere'} is not a folder",
            backend.configuration_problem(),
        )

    def test_without_torch_here_it_is_not_configured_and_says_why(self) -> None:
        backend = self.backend(weights_folder(self.tmp / "w", "flux-2-klein-4b"))
        with mock.patch.object(
            diffusers_pipeline.importlib.util, "find_spec", return_value=None
        ):
            problem = backend.configuration_problem()
            self.assertFalse(backend.is_configured())
        self.assertIn(f"not installed for Python {PYTHON} here", problem)
        self.assertIn("torch", problem)

    def test_the_models_are_the_ones_the_folder_holds(self) -> None:
        backend = self.configured("flux-2-klein-4b")
        self.assertTrue(backend.is_configured())
        caps = backend.capabilities()
        self.assertEqual(list(caps.models), ["flux-2-klein-4b"])
        self.assertTrue(caps.synchronous)
        self.assertFalse(caps.can_cancel or caps.calls_back)
        self.assertEqual(backend.celery_queue, "gpu")
        with self.assertRaises(RuleViolation) as ctx:
            backend.validate(req(model="flux-2-dev"))
        self.assertEqual(ctx.exception.rule, "model")
        self.assertIn("flux-2-klein-4b", ctx.exception.message)

    def test_hub_names_and_a_single_model_folder(self) -> None:
        root = weights_folder(
            self.tmp / "w",
            "flux-2-dev",
            "flux-2-klein-9b",
            flux_2_dev="FLUX.2-dev",
            flux_2_klein_9b="FLUX.2-klein-9B",
        )
        self.assertEqual(
            sorted(diffusers_weights.find_models(root)),
            ["flux-2-dev", "flux-2-klein-9b"],
        )
        self.assertEqual(
            list(diffusers_weights.find_models(root / "FLUX.2-klein-9B")),
            ["flux-2-klein-9b"],
        )

    def test_unusable_folders_are_explained(self) -> None:
        root = weights_folder(
            self.tmp / "w", "flux-2-dev", flux_2_dev="flux-2-klein-4b"
        )
        (root / "mystery").mkdir()
        (root / "mystery" / "model_index.json").write_text(
            json.dumps({"_class_name": "Flux2KleinPipeline"})
        )
        found, problems = diffusers_weights.scan(root)
        self.assertEqual(found, {})
        self.assertIn(
            "is a Flux2Pipeline, flux-2-klein-4b needs a Flux2KleinPipeline",
            problems[0],
        )
        self.assertIn("cannot tell which model", problems[1])
        backend = self.backend(root)
        self.assertFalse(backend.is_configured())
        self.assertIn("cannot tell which model", backend.configuration_problem())

    def test_declared_models_configure_a_process_without_the_weights(self) -> None:
        # A web server on another machine than the GPU workers: FLUX2_MODELS says what they hold.
        backend = self.backend(models="flux-2-dev, flux-2-klein-9b, flux-3-ultra")
        self.assertTrue(backend.is_configured())
        self.assertEqual(
            list(backend.capabilities().models), ["flux-2-dev", "flux-2-klein-9b"]
        )
        with self.assertRaises(BackendError) as ctx:
            backend.submit(req(model="flux-2-dev"))
        self.assertEqual(ctx.exception.error_class, ErrorClass.AUTH)
        self.assertIn(
            "FLUX2_MODEL_PATH is not set on this worker", ctx.exception.message
        )

    def test_submit_unconfigured_is_a_configuration_error_not_a_crash(self) -> None:
        backend = self.backend(weights_folder(self.tmp / "w", "flux-2-klein-4b"))
        with (
            mock.patch.object(
                diffusers_pipeline.importlib.util, "find_spec", return_value=None
            ),
            self.assertRaises(BackendError) as ctx,
        ):
            backend.submit(req())
        self.assertEqual(ctx.exception.error_class, ErrorClass.AUTH)
        self.assertFalse(ctx.exception.retryable)
        self.assertIn("not installed", ctx.exception.message)


class RuleTests(TempDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dev_and_klein = self.configured(
            "flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b"
        )

    def refused(self, rule: str, **kw: object) -> RuleViolation:
        with self.assertRaises(RuleViolation) as ctx:
            self.dev_and_klein.validate(req(**kw))
        self.assertEqual(ctx.exception.rule, rule, ctx.exception.message)
        return ctx.exception

    def test_sizes(self) -> None:
        for width, height in ((64, 64), (2048, 2048), (1024, 1536), (1920, 1088)):
            self.dev_and_klein.validate(req(width=width, height=height))
        self.refused("dimension_step", width=1000)
        self.refused("dimensions", width=48)
        self.refused("dimensions", width=2064, height=1024)

    def test_parameters(self) -> None:
        self.dev_and_klein.validate(req(model="flux-2-dev", params={"steps": 28}))
        self.dev_and_klein.validate(req(model="flux-2-dev", params={"guidance": 2.5}))
        self.dev_and_klein.validate(req(params={"steps": 4}))
        self.refused("param_range", params={"steps": 0})
        self.refused("param_range", model="flux-2-dev", params={"steps": 51})
        self.refused("param_range", model="flux-2-dev", params={"guidance": 1.0})
        self.refused("param_range", model="flux-2-dev", params={"steps": 2.5})
        # [klein] 4B/9B are step-distilled: diffusers ignores their guidance.
        self.assertIn(
            "guidance", self.refused("params", params={"guidance": 3}).message
        )
        self.refused("params", model="flux-2-dev", params={"prompt_upsampling": True})

    def test_references(self) -> None:
        self.dev_and_klein.validate(req(model="flux-2-dev", references=(ref(),) * 6))
        self.dev_and_klein.validate(req(references=(ref(),) * 4))
        self.refused("max_references", model="flux-2-dev", references=(ref(),) * 7)
        self.refused("max_references", references=(ref(),) * 5)
        self.refused("reference_size", references=(ref(48, 512),))
        self.refused("reference_aspect", references=(ref(64, 600),))

    def test_prompt_and_seed(self) -> None:
        self.refused("prompt", prompt="  ")
        self.refused("seed", seed=-1)
        self.refused("seed", seed=2**53)
        self.dev_and_klein.validate(req(seed=None))

    def test_price_is_zero_or_configured(self) -> None:
        self.assertEqual(self.dev_and_klein.estimate_cost(req()), Decimal(0))
        backend = self.backend(price_per_image="0.0125")
        self.assertEqual(backend.estimate_cost(req()), Decimal("0.0125"))
        self.assertEqual(
            self.backend(price_per_image="cheap").estimate_cost(req()), Decimal(0)
        )


class SubmitMappingTests(TempDirTestCase):
    """submit() around diffusers_pipeline.generate (stood in for here: no torch)."""

    def output(self, **kw: object) -> diffusers_pipeline.Output:
        values: dict[str, object] = {
            "png": png(1024, 768),
            "width": 1024,
            "height": 768,
            "seed": 7,
            "steps": 4,
            "guidance": 1.0,
            "device": "cuda",
            "dtype": "bfloat16",
            "load_seconds": 12.5,
            "run_seconds": 1.25,
        }
        values.update(kw)
        return diffusers_pipeline.Output(**values)  # type: ignore[arg-type]

    def test_a_job_comes_back_ready_with_the_png(self) -> None:
        backend = self.configured("flux-2-klein-4b", "flux-2-dev")
        with mock.patch.object(
            diffusers_pipeline, "generate", return_value=self.output()
        ) as generate:
            submission = backend.submit(
                req(
                    model="flux-2-dev",
                    params={"steps": 20, "guidance": 3.5},
                    references=(ref(),),
                )
            )
        root, job = generate.call_args.args
        self.assertEqual(root, backend.model_path)
        self.assertEqual(generate.call_args.kwargs, {"offload": "auto"})
        self.assertEqual(
            (job.model, job.width, job.height, job.seed), ("flux-2-dev", 1024, 768, 7)
        )
        self.assertEqual((job.steps, job.guidance), (20, 3.5))
        self.assertEqual(len(job.references), 1)
        result = submission.result
        assert result is not None
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(result.content_type, "image/png")
        self.assertEqual(result.cost, Decimal(0))
        self.assertEqual(result.raw["device"], "cuda")
        self.assertTrue(submission.task_id.startswith("diffusers-"))
        self.assertEqual(backend.fetch(result), (result.result_bytes, "image/png"))

    def test_a_missing_seed_is_drawn_and_reported(self) -> None:
        backend = self.configured("flux-2-klein-4b")
        with mock.patch.object(
            diffusers_pipeline,
            "generate",
            side_effect=lambda root, job, offload: self.output(seed=job.seed),
        ) as generate:
            submission = backend.submit(req(seed=None))
        drawn = generate.call_args.args[1].seed
        self.assertIsInstance(drawn, int)
        self.assertEqual(submission.result.seed, drawn)

    def test_pipeline_errors_map_onto_the_studio_classes(self) -> None:
        backend = self.configured("flux-2-klein-4b")
        cases = [
            ("missing_weights", False, ErrorClass.AUTH),
            ("unavailable", False, ErrorClass.AUTH),
            ("invalid", False, ErrorClass.INVALID_REQUEST),
            ("out_of_memory", True, ErrorClass.PROVIDER_ERROR),
            ("timeout", False, ErrorClass.TIMEOUT),
            ("failed", False, ErrorClass.PROVIDER_ERROR),
        ]
        for kind, retryable, error_class in cases:
            with self.subTest(kind):
                error = diffusers_pipeline.PipelineError(
                    kind, f"{kind} happened", retryable=retryable
                )
                with (
                    mock.patch.object(
                        diffusers_pipeline, "generate", side_effect=error
                    ),
                    self.assertRaises(BackendError) as ctx,
                ):
                    backend.submit(req())
                self.assertEqual(ctx.exception.error_class, error_class)
                self.assertEqual(ctx.exception.retryable, retryable)
                self.assertEqual(ctx.exception.message, f"{kind} happened")

    def test_nothing_is_kept_to_poll(self) -> None:
        result = self.backend().poll(task_id="diffusers-x", poll_url=None)
        self.assertEqual(result.state, ProviderState.FAILED)
        self.assertEqual(result.error.error_class, ErrorClass.NOT_FOUND)


class GpuScripted(ScriptedBackend):
    name = "gpuscripted"
    celery_queue = "gpu"


class GpuQueueTests(EngineTestCase):
    """The diffusers backend's submits run on the `gpu` queue, never inline elsewhere."""

    backend_name = "gpuscripted"

    def setUp(self) -> None:
        super().setUp()
        patcher = mock.patch.dict(registry.BACKENDS, {"gpuscripted": GpuScripted})
        patcher.start()
        self.addCleanup(patcher.stop)

    def route(self, options: dict, *args: object) -> str:
        from studio.celery import app

        return app.amqp.router.route(
            options, "generation.tasks.generation_submit", args
        )["queue"].name

    def test_the_dispatcher_sends_gpu_submits_to_their_queue_and_never_inline(
        self,
    ) -> None:
        one, two = self.create(), self.create()
        with (
            mock.patch.object(tasks.generation_submit, "apply_async") as send,
            mock.patch.object(tasks.generation_submit, "delay") as delay,
        ):
            tasks._dispatch("gpuscripted:env", inline=1)
        self.assertEqual(
            [(c.args, c.kwargs) for c in send.call_args_list],
            [(((one.pk,),), {"queue": "gpu"}), (((two.pk,),), {"queue": "gpu"})],
        )
        delay.assert_not_called()
        self.assertEqual(GpuScripted.calls["submit"], 0)  # nothing ran in this task

    def test_retries_and_redrives_are_routed_by_the_generations_backend(self) -> None:
        gpu = self.create()
        other = self.create()
        Generation.objects.filter(pk=other.pk).update(backend="scripted")
        real = self.create()
        Generation.objects.filter(pk=real.pk).update(backend="diffusers")
        self.assertEqual(self.route({}, gpu.pk), "gpu")
        self.assertEqual(self.route({}, real.pk), "gpu")
        self.assertEqual(self.route({}, other.pk), "dispatch")
        self.assertEqual(self.route({}), "dispatch")  # no id: the static routes
        self.assertEqual(
            self.route({"queue": "ingest"}, gpu.pk), "ingest"
        )  # explicit wins
        self.assertIsNone(tasks.backend_queue("scripted"))
        self.assertEqual(tasks.backend_queue("diffusers"), "gpu")


class EndToEndTests(TempDirTestCase):
    """Through the Backend class into the real pipeline code, where torch is installed."""

    def setUp(self) -> None:
        if not HAS_TORCH:
            self.skipTest(NO_TORCH)
        super().setUp()

    def test_a_tiny_klein_renders_through_the_backend(self) -> None:
        from tests.ml import tiny_flux2

        tiny_flux2.save_model(self.tmp, "flux-2-klein-4b")
        self.addCleanup(diffusers_pipeline.unload)
        backend = self.backend(self.tmp)
        self.assertTrue(backend.is_configured(), backend.configuration_problem())
        request = req(width=64, height=64, params={"steps": 2})
        first = backend.submit(request).result
        again = backend.submit(request).result
        other = backend.submit(req(width=64, height=64, seed=8, params={"steps": 2}))
        assert first is not None and again is not None and other.result is not None
        self.assertEqual(first.state, ProviderState.READY)
        self.assertEqual(Image.open(io.BytesIO(first.result_bytes)).size, (64, 64))
        self.assertEqual(first.result_bytes, again.result_bytes)
        self.assertNotEqual(first.result_bytes, other.result.result_bytes)


class CommandTests(CommandTestCase):
    """`manage.py generate --backend diffusers`: the engine's path for this backend."""

    def setUp(self) -> None:
        super().setUp()
        unset = unset_settings()
        unset.enable()
        self.addCleanup(unset.disable)

    def test_without_weights_it_exits_3_before_anything_is_stored(self) -> None:
        code, _out, err = self.generate(
            "--backend", "diffusers", "--model", "flux-2-klein-4b", "--prompt", "x"
        )
        self.assertEqual(code, 3, err)
        self.assertIn("diffusers", err)
        self.assertEqual(Generation.objects.count(), 0)

    def test_a_generation_runs_through_the_engine_and_is_stored(self) -> None:
        # The pipeline stands in here (no torch in this interpreter): the engine's synchronous path
        # (submit answers the image, stored in the same step) is what this checks.
        weights = override_settings(
            FLUX2_MODEL_PATH=str(
                weights_folder(self.tmp / "weights", "flux-2-klein-4b")
            )
        )
        weights.enable()
        self.addCleanup(weights.disable)
        calls: list[diffusers_pipeline.Job] = []

        def generate(root: str, job: diffusers_pipeline.Job, offload: str):
            calls.append(job)
            return diffusers_pipeline.Output(
                png=png(job.width, job.height), width=job.width, height=job.height,
                seed=job.seed, steps=job.steps or 4, guidance=1.0, device="cuda",
                dtype="bfloat16", load_seconds=0.0, run_seconds=0.5,
            )  # fmt: skip

        out_file = self.tmp / "klein.png"
        with (
            mock.patch.object(diffusers_pipeline, "runtime_problem", return_value=None),
            mock.patch.object(diffusers_pipeline, "generate", side_effect=generate),
        ):
            code, out, err = self.generate(
                "--backend", "diffusers", "--model", "flux-2-klein-4b", "--prompt",
                "A red mug", "--width", "512", "--height", "384", "--param", "steps=4",
                "--out", str(out_file),
            )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertIn("succeeded", out)
        self.assertEqual(len(calls), 1)
        self.assertEqual(
            (calls[0].width, calls[0].height, calls[0].steps), (512, 384, 4)
        )
        with Image.open(out_file) as image:
            self.assertEqual((image.format, image.size), ("PNG", (512, 384)))
        generation = Generation.objects.get()
        self.assertEqual(generation.state, GenerationState.SUCCEEDED)
        self.assertEqual(generation.actual_cost, Decimal(0))

    def test_end_to_end_on_a_tiny_klein(self) -> None:
        if not HAS_TORCH:
            self.skipTest(NO_TORCH)
        from tests.ml import tiny_flux2

        tiny_flux2.save_model(self.tmp / "weights", "flux-2-klein-4b")
        self.addCleanup(diffusers_pipeline.unload)
        weights = override_settings(FLUX2_MODEL_PATH=str(self.tmp / "weights"))
        weights.enable()
        self.addCleanup(weights.disable)
        out_file = self.tmp / "tiny.png"
        code, out, err = self.generate(
            "--backend", "diffusers", "--model", "flux-2-klein-4b", "--prompt", "A red mug",
            "--width", "64", "--height", "64", "--param", "steps=2", "--out", str(out_file),
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        with Image.open(out_file) as image:
            self.assertEqual(image.size, (64, 64))
