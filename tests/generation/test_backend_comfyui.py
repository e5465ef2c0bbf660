"""Contract tests of the ComfyUI backend against the fake over real HTTP (no database)."""

from __future__ import annotations

import io
import json
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
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
from generation.backends.comfyui.backend import BACKEND_CLASS, ComfyUIBackend
from generation.backends.comfyui.workflow import (
    WORKFLOW_DIR,
    build_graph,
    load_workflow,
)
from tests.fakes.comfyui_server import FakeComfyUI, make_image


def ref(
    width: int = 96, height: int = 64, colour: tuple[int, int, int] = (40, 90, 160)
) -> ReferenceInput:
    return ReferenceInput(
        role="product",
        content=make_image(width, height, "PNG", colour),
        content_type="image/png",
        width=width,
        height=height,
    )


def request(model: str = "flux-2-dev", **kwargs: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "a ceramic mug on a walnut desk",
        "width": 1024,
        "height": 768,
        "seed": 1234,
    }
    values.update(kwargs)
    return GenerationRequest(model=model, **values)  # type: ignore[arg-type]


def nodes(graph: dict, class_type: str) -> list[str]:
    return [
        node_id for node_id, node in graph.items() if node["class_type"] == class_type
    ]


class ComfyUITestCase(SimpleTestCase):
    fake: FakeComfyUI

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.fake = FakeComfyUI().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        self.fake.reset()
        self.fake.latency = 0.0
        self.backend = ComfyUIBackend(self.fake.config())

    def finish(self, task_id: str, timeout: float = 5.0) -> PollResult:
        deadline = time.monotonic() + timeout
        while True:
            result = self.backend.poll(task_id=task_id, poll_url=None)
            if result.state != ProviderState.PENDING or time.monotonic() > deadline:
                return result
            time.sleep(0.02)

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


class WorkflowTests(SimpleTestCase):
    def test_the_dev_workflow_is_the_official_template_without_references(self) -> None:
        graph = load_workflow("flux2_dev.json")
        by_class = {node["class_type"]: node["inputs"] for node in graph.values()}
        self.assertEqual(
            by_class["UNETLoader"]["unet_name"], "flux2_dev_fp8mixed.safetensors"
        )
        self.assertEqual(
            by_class["CLIPLoader"],
            {
                "clip_name": "mistral_3_small_flux2_bf16.safetensors",
                "type": "flux2",
                "device": "default",
            },
        )
        self.assertEqual(by_class["VAELoader"]["vae_name"], "flux2-vae.safetensors")
        self.assertEqual(by_class["FluxGuidance"]["guidance"], 4)
        self.assertEqual(by_class["KSamplerSelect"]["sampler_name"], "euler")
        self.assertEqual(by_class["Flux2Scheduler"]["steps"], 20)
        # T2I: FluxGuidance feeds the guider directly.
        self.assertEqual(graph["22"]["inputs"]["conditioning"], ["26", 0])
        self.assertEqual(nodes(graph, "ReferenceLatent"), [])

    def test_the_klein_workflow_uses_a_cfg_guider_at_1_and_4_steps(self) -> None:
        graph = load_workflow("flux2_klein.json")
        by_class = {node["class_type"]: node["inputs"] for node in graph.values()}
        self.assertEqual(by_class["CFGGuider"]["cfg"], 1)
        self.assertEqual(by_class["Flux2Scheduler"]["steps"], 4)
        self.assertEqual(
            by_class["UNETLoader"]["unet_name"], "flux-2-klein-9b.safetensors"
        )
        self.assertEqual(
            by_class["CLIPLoader"]["clip_name"], "qwen_3_8b_fp8mixed.safetensors"
        )

    def test_every_shipped_workflow_is_a_valid_api_graph(self) -> None:
        for path in WORKFLOW_DIR.glob("*.json"):
            graph = json.loads(path.read_text())
            for node_id, node in graph.items():
                self.assertTrue(node_id.isdigit(), path)
                self.assertIsInstance(node["class_type"], str)
                for value in node["inputs"].values():
                    if isinstance(value, list):
                        self.assertIn(
                            value[0],
                            graph,
                            f"{path.name}: {node_id} links to a missing node",
                        )

    def test_it_chains_one_reference_latent_per_image(self) -> None:
        template = load_workflow("flux2_dev.json")
        graph = build_graph(
            template,
            prompt="p",
            seed=7,
            width=512,
            height=768,
            reference_images=("a.png", "sub/b.png", "c.png"),
        )
        references = nodes(graph, "ReferenceLatent")
        self.assertEqual(len(references), 3)
        self.assertEqual(
            sorted(graph[n]["inputs"]["image"] for n in nodes(graph, "LoadImage")),
            ["a.png", "c.png", "sub/b.png"],
        )
        # Walk back from the guider: three ReferenceLatents, then the FluxGuidance node.
        link, seen = graph["22"]["inputs"]["conditioning"], []
        while graph[link[0]]["class_type"] == "ReferenceLatent":
            seen.append(link[0])
            encode = graph[link[0]]["inputs"]["latent"][0]
            self.assertEqual(graph[encode]["class_type"], "VAEEncode")
            self.assertEqual(graph[encode]["inputs"]["vae"], ["10", 0])
            link = graph[link[0]]["inputs"]["conditioning"]
        self.assertEqual(link, ["26", 0])
        self.assertEqual(sorted(seen), sorted(references))
        self.assertEqual(
            template["22"]["inputs"]["conditioning"], ["26", 0]
        )  # the template is untouched

    def test_it_fills_prompt_seed_size_steps_and_guidance(self) -> None:
        graph = build_graph(
            load_workflow("flux2_dev.json"),
            prompt="hello",
            seed=99,
            width=1248,
            height=832,
            steps=28,
            guidance=2.5,
        )
        self.assertEqual(graph["6"]["inputs"]["text"], "hello")
        self.assertEqual(graph["25"]["inputs"]["noise_seed"], 99)
        self.assertEqual(
            graph["47"]["inputs"], {"width": 1248, "height": 832, "batch_size": 1}
        )
        self.assertEqual(
            graph["48"]["inputs"], {"steps": 28, "width": 1248, "height": 832}
        )
        self.assertEqual(graph["26"]["inputs"]["guidance"], 2.5)

    def test_klein_references_feed_the_positive_input(self) -> None:
        graph = build_graph(
            load_workflow("flux2_klein.json"),
            prompt="p",
            seed=1,
            width=512,
            height=512,
            reference_images=("a.png",),
        )
        positive = graph["22"]["inputs"]["positive"]
        self.assertEqual(graph[positive[0]]["class_type"], "ReferenceLatent")
        self.assertEqual(graph[positive[0]]["inputs"]["conditioning"], ["6", 0])
        self.assertEqual(graph["22"]["inputs"]["negative"], ["7", 0])


class ModelMappingTests(ComfyUITestCase):
    def test_it_serves_dev_and_klein_9b_from_their_workflows(self) -> None:
        caps = self.backend.capabilities()
        self.assertEqual(caps.models["flux-2-dev"].provider_model, "flux2_dev.json")
        self.assertEqual(caps.models["flux-2-dev"].max_references, 6)
        self.assertEqual(
            caps.models["flux-2-klein-9b"].provider_model, "flux2_klein.json"
        )
        self.assertEqual(caps.models["flux-2-klein-9b"].max_references, 4)
        self.assertTrue(caps.can_cancel)
        self.assertFalse(caps.synchronous)
        self.assertIs(BACKEND_CLASS, ComfyUIBackend)

    def test_it_refuses_hosted_only_models(self) -> None:
        for model in ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b"):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(model))
            self.assertEqual(caught.exception.rule, "model")
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_klein_runs_end_to_end(self) -> None:
        submission = self.backend.submit(
            request("flux-2-klein-9b", params={"steps": 6}, references=(ref(),))
        )
        graph = self.fake.graphs[submission.task_id]
        self.assertEqual(graph[nodes(graph, "Flux2Scheduler")[0]]["inputs"]["steps"], 6)
        self.assertEqual(self.finish(submission.task_id).state, ProviderState.READY)

    def test_klein_takes_no_guidance(self) -> None:
        with self.assertRaises(RuleViolation) as caught:
            self.backend.submit(request("flux-2-klein-9b", params={"guidance": 3.0}))
        self.assertEqual(caught.exception.rule, "params")


class LifecycleTests(ComfyUITestCase):
    def test_it_queues_polls_and_fetches_a_real_png(self) -> None:
        self.fake.latency = 0.3
        submission = self.backend.submit(request(params={"steps": 12, "guidance": 3.0}))
        self.assertEqual(submission.raw["seed"], 1234)
        graph = self.fake.graphs[submission.task_id]
        self.assertEqual(graph["6"]["inputs"]["text"], "a ceramic mug on a walnut desk")
        self.assertEqual(graph["25"]["inputs"]["noise_seed"], 1234)
        self.assertEqual(graph["48"]["inputs"]["steps"], 12)
        self.assertEqual(graph["26"]["inputs"]["guidance"], 3.0)

        first = self.backend.poll(task_id=submission.task_id, poll_url=None)
        self.assertEqual(first.state, ProviderState.PENDING)
        self.assertEqual(first.raw["queue"], "running")
        result = self.finish(submission.task_id)
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(result.seed, 1234)
        self.assertTrue(
            result.result_url
            and result.result_url.startswith(f"{self.fake.base_url}/view?")
        )
        self.assertEqual(result.raw["image"]["subfolder"], "flux-studio")
        data, mime = self.backend.fetch(result)
        self.assertEqual(mime, "image/png")
        with Image.open(io.BytesIO(data)) as image:
            self.assertEqual(image.size, (1024, 768))

    def test_it_sends_its_client_id_and_prompt_id(self) -> None:
        submission = self.backend.submit(request())
        self.assertEqual(
            str(uuid.UUID(submission.task_id)), submission.task_id
        )  # ours, kept by a newer server
        item = self.fake.history_item(submission.task_id)
        assert item is not None
        self.assertEqual(item["prompt"][3], {"client_id": "flux-studio"})

    def test_an_older_server_chooses_its_own_prompt_id(self) -> None:
        with FakeComfyUI(honour_prompt_id=False) as old:
            backend = ComfyUIBackend(old.config())
            submission = backend.submit(request())
            self.assertIn(submission.task_id, old.graphs)
            self.assertEqual(
                backend.poll(task_id=submission.task_id, poll_url=None).state,
                ProviderState.READY,
            )

    def test_a_missing_seed_is_drawn_and_reported(self) -> None:
        submission = self.backend.submit(request(seed=None))
        drawn = self.fake.graphs[submission.task_id]["25"]["inputs"]["noise_seed"]
        self.assertIsInstance(drawn, int)
        self.assertEqual(submission.raw["seed"], drawn)
        self.assertEqual(self.finish(submission.task_id).seed, drawn)

    def test_a_queued_prompt_reports_its_position(self) -> None:
        self.fake.hold()
        first = self.backend.submit(request())
        second = self.backend.submit(request())
        result = self.backend.poll(task_id=second.task_id, poll_url=None)
        self.assertEqual(
            (result.state, result.progress, result.raw),
            (ProviderState.PENDING, 0.0, {"queue": "pending", "position": 1}),
        )
        self.fake.release()
        self.assertEqual(self.finish(first.task_id).state, ProviderState.READY)
        self.assertEqual(self.finish(second.task_id).state, ProviderState.READY)

    def test_a_forgotten_prompt_is_not_found(self) -> None:
        self.fake.hold()
        submission = self.backend.submit(request())
        self.fake.restart()
        self.fake.release()
        result = self.backend.poll(task_id=submission.task_id, poll_url=None)
        assert result.error is not None
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.NOT_FOUND),
        )

    def test_the_api_prefix_works_too(self) -> None:
        backend = ComfyUIBackend(BackendConfig(base_url=f"{self.fake.base_url}/api"))
        submission = backend.submit(request())
        result = backend.poll(task_id=submission.task_id, poll_url=None)
        self.assertEqual(result.state, ProviderState.READY)
        self.assertEqual(backend.fetch(result)[1], "image/png")


class ReferenceTests(ComfyUITestCase):
    def test_it_uploads_each_reference_and_chains_it(self) -> None:
        refs = (ref(colour=(1, 2, 3)), ref(colour=(4, 5, 6)), ref(colour=(7, 8, 9)))
        submission = self.backend.submit(request(references=refs))
        uploads = {
            key: data for key, data in self.fake.uploads.items() if key[0] == "input"
        }
        self.assertEqual(len(uploads), 3)
        self.assertTrue(all(subfolder == "flux-studio" for _, subfolder, _ in uploads))
        self.assertEqual(sorted(uploads.values()), sorted(r.content for r in refs))
        graph = self.fake.graphs[submission.task_id]
        self.assertEqual(len(nodes(graph, "ReferenceLatent")), 3)
        loaded = sorted(graph[n]["inputs"]["image"] for n in nodes(graph, "LoadImage"))
        self.assertEqual(loaded, sorted(f"{sub}/{name}" for _, sub, name in uploads))
        self.assertEqual(self.finish(submission.task_id).state, ProviderState.READY)

    def test_a_retried_upload_reuses_the_file(self) -> None:
        one = ref()
        self.backend.submit(request(references=(one,)))
        self.backend.submit(request(references=(one,)))
        self.assertEqual(len([k for k in self.fake.uploads if k[0] == "input"]), 1)

    def test_it_uses_the_name_comfyui_gives_on_a_clash(self) -> None:
        mine = ref(colour=(200, 10, 10))
        stored = self.backend.upload_reference(mine)
        subfolder, _, name = stored.rpartition("/")
        self.fake.reset()
        self.fake.store_upload(
            b"someone else's file", name, "input", subfolder, overwrite=True
        )
        submission = self.backend.submit(request(references=(mine,)))
        [load] = nodes(self.fake.graphs[submission.task_id], "LoadImage")
        self.assertEqual(
            self.fake.graphs[submission.task_id][load]["inputs"]["image"],
            f"{subfolder}/{name[:-4]} (1).png",
        )

    def test_too_many_references_are_refused_before_uploading(self) -> None:
        for model, count in (("flux-2-dev", 7), ("flux-2-klein-9b", 5)):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(
                    request(model, references=tuple(ref() for _ in range(count)))
                )
            self.assertEqual(caught.exception.rule, "max_references")
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_six_references_are_fine_for_dev(self) -> None:
        refs = tuple(ref(colour=(i, i, i)) for i in range(6))
        submission = self.backend.submit(request(references=refs))
        self.assertEqual(
            len(nodes(self.fake.graphs[submission.task_id], "ReferenceLatent")), 6
        )

    def test_a_failed_upload_queues_nothing(self) -> None:
        self.fake.inject("server_error", endpoint="upload")
        self.assertFails(
            ErrorClass.PROVIDER_ERROR, request(references=(ref(),)), retryable=True
        )
        self.assertEqual(self.fake.counts["prompts"], 0)


class RuleTests(ComfyUITestCase):
    def test_sizes(self) -> None:
        for width, height, rule in (
            (1000, 1024, "dimension_step"),
            (48, 1024, "dimensions"),
            (2560, 2048, "max_megapixels"),
        ):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(width=width, height=height))
            self.assertEqual(caught.exception.rule, rule)
        self.assertEqual(self.fake.counts["requests"], 0)

    def test_params_and_seed(self) -> None:
        for kwargs, rule in (
            ({"params": {"steps": 0}}, "param_range"),
            ({"params": {"guidance": -1.0}}, "param_range"),
            ({"params": {"sampler": "dpm"}}, "params"),
            ({"seed": -1}, "seed"),
            ({"prompt": ""}, "prompt"),
        ):
            with self.assertRaises(RuleViolation) as caught:
                self.backend.submit(request(**kwargs))
            self.assertEqual(caught.exception.rule, rule, kwargs)

    def test_pricing_is_zero_or_configured(self) -> None:
        self.assertEqual(self.backend.estimate_cost(request()), Decimal(0))
        priced = ComfyUIBackend(self.fake.config(price_per_image="0.004"))
        self.assertEqual(priced.estimate_cost(request()), Decimal("0.004"))
        with override_settings(**self.fake.env(), COMFYUI_PRICE_PER_IMAGE="0.01"):
            self.assertEqual(
                ComfyUIBackend(accounts.settings_config("comfyui")).estimate_cost(
                    request()
                ),
                Decimal("0.01"),
            )


class ExecutionOutcomeTests(ComfyUITestCase):
    def test_node_errors_are_an_invalid_request_with_the_node_messages(self) -> None:
        self.fake.inject("node_errors", node_id="12")
        error = self.assertFails(
            ErrorClass.INVALID_REQUEST, retryable=False, status_code=400
        )
        self.assertIn(
            "node 12 (UNETLoader): Value not in list: unet_name: 'flux2_dev_fp8mixed.safetensors' not in []",
            error.message,
        )
        self.assertIn("12", error.details["node_errors"])

    def test_a_missing_model_file_fails_validation_for_real(self) -> None:
        with FakeComfyUI(
            models={
                "diffusion_models": [],
                "text_encoders": [],
                "vae": ["flux2-vae.safetensors"],
            }
        ) as bare:
            backend = ComfyUIBackend(bare.config())
            with self.assertRaises(BackendError) as caught:
                backend.submit(request())
        self.assertEqual(caught.exception.error_class, ErrorClass.INVALID_REQUEST)
        self.assertIn(
            "node 12 (UNETLoader): Value not in list", caught.exception.message
        )
        self.assertIn("node 38 (CLIPLoader)", caught.exception.message)

    def test_an_execution_error_fails_with_the_exception_message(self) -> None:
        self.fake.inject(
            "execution_error",
            exception_message="mat1 and mat2 shapes cannot be multiplied",
        )
        result = self.finish(self.backend.submit(request()).task_id)
        assert result.error is not None
        self.assertEqual(
            (result.state, result.error.error_class),
            (ProviderState.FAILED, ErrorClass.PROVIDER_ERROR),
        )
        self.assertIn(
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied",
            result.error.message,
        )
        self.assertIn("SamplerCustomAdvanced", result.error.message)
        self.assertFalse(result.error.retryable)

    def test_out_of_memory_is_worth_a_retry(self) -> None:
        self.fake.inject("oom")
        result = self.finish(self.backend.submit(request()).task_id)
        assert result.error is not None
        self.assertTrue(result.error.retryable)

    def test_success_without_an_image_is_a_bad_result(self) -> None:
        self.fake.inject("no_output")
        result = self.finish(self.backend.submit(request()).task_id)
        assert result.error is not None
        self.assertEqual(result.error.error_class, ErrorClass.BAD_RESULT)


class CancelTests(ComfyUITestCase):
    def test_a_queued_prompt_is_deleted_from_the_queue(self) -> None:
        self.fake.hold()
        running = self.backend.submit(request())
        queued = self.backend.submit(request())
        self.assertTrue(self.backend.cancel(task_id=queued.task_id, poll_url=None))
        self.assertEqual(self.fake.state(queued.task_id), "unknown")
        self.assertEqual(self.fake.state(running.task_id), "running")
        self.assertEqual(
            (self.fake.counts["deletes"], self.fake.counts["interrupts"]), (1, 0)
        )

    def test_a_running_prompt_is_interrupted(self) -> None:
        self.fake.hold()
        submission = self.backend.submit(request())
        self.assertTrue(self.backend.cancel(task_id=submission.task_id, poll_url=None))
        self.assertEqual(self.fake.counts["interrupts"], 1)
        result = self.backend.poll(task_id=submission.task_id, poll_url=None)
        assert result.error is not None
        self.assertEqual(result.state, ProviderState.FAILED)
        self.assertTrue(result.error.details["canceled"])
        self.assertIn("canceled", result.error.message)

    def test_interrupt_names_the_prompt_so_others_are_safe(self) -> None:
        self.fake.hold()
        other = self.backend.submit(request())
        self.fake.interrupt("not-this-one")
        self.assertEqual(self.fake.state(other.task_id), "running")

    def test_a_finished_prompt_cannot_be_canceled(self) -> None:
        submission = self.backend.submit(request())
        self.assertEqual(self.finish(submission.task_id).state, ProviderState.READY)
        self.assertFalse(self.backend.cancel(task_id=submission.task_id, poll_url=None))
        self.assertEqual(
            (self.fake.counts["deletes"], self.fake.counts["interrupts"]), (0, 0)
        )


class FaultTests(ComfyUITestCase):
    def test_http_faults_on_submit(self) -> None:
        for kind, error_class, retryable in (
            ("server_error", ErrorClass.PROVIDER_ERROR, True),
            ("unavailable", ErrorClass.PROVIDER_ERROR, True),
            ("drop", ErrorClass.NETWORK, True),
            ("malformed", ErrorClass.BAD_RESULT, True),
            ("wrong_content_type", ErrorClass.BAD_RESULT, True),
            ("unauthorized", ErrorClass.AUTH, False),
            ("forbidden", ErrorClass.AUTH, False),
            ("not_found", ErrorClass.NOT_FOUND, False),
        ):
            self.fake.inject(kind, endpoint="prompt")
            self.assertFails(error_class, retryable=retryable)
        self.assertEqual(self.fake.counts["prompts"], 0)

    def test_unavailable_carries_retry_after(self) -> None:
        self.fake.inject("unavailable", endpoint="prompt")
        self.assertFails(ErrorClass.PROVIDER_ERROR, retry_after=1.0, status_code=503)

    def test_a_slow_server_times_out(self) -> None:
        self.backend = ComfyUIBackend(self.fake.config(read_timeout="0.3"))
        self.fake.inject("slow", endpoint="prompt", seconds=1.0)
        self.assertFails(ErrorClass.TIMEOUT, retryable=True)
        # The server still queues the prompt after we gave up: a retried submit would run twice.
        deadline = time.monotonic() + 5
        while self.fake.counts["prompts"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.fake.counts["prompts"], 1)

    def test_faults_while_polling(self) -> None:
        submission = self.backend.submit(request())
        for kind, error_class in (
            ("drop", ErrorClass.NETWORK),
            ("malformed", ErrorClass.BAD_RESULT),
            ("server_error", ErrorClass.PROVIDER_ERROR),
        ):
            self.fake.inject(kind, endpoint="history")
            with self.assertRaises(BackendError) as caught:
                self.backend.poll(task_id=submission.task_id, poll_url=None)
            self.assertEqual(caught.exception.error_class, error_class)
        self.assertEqual(self.finish(submission.task_id).state, ProviderState.READY)

    def test_faults_while_fetching(self) -> None:
        result = self.finish(self.backend.submit(request()).task_id)
        for kind, error_class in (
            ("malformed", ErrorClass.BAD_RESULT),
            ("wrong_content_type", ErrorClass.BAD_RESULT),
            ("drop", ErrorClass.NETWORK),
            ("unavailable", ErrorClass.PROVIDER_ERROR),
        ):
            self.fake.inject(kind, endpoint="view")
            with self.assertRaises(BackendError) as caught:
                self.backend.fetch(result)
            self.assertEqual(caught.exception.error_class, error_class, kind)
        self.assertEqual(self.backend.fetch(result)[1], "image/png")

    def test_a_deleted_output_is_not_found(self) -> None:
        result = self.finish(self.backend.submit(request()).task_id)
        self.fake.reset()
        with self.assertRaises(BackendError) as caught:
            self.backend.fetch(result)
        self.assertEqual(caught.exception.error_class, ErrorClass.NOT_FOUND)

    def test_fetch_only_talks_to_the_configured_server(self) -> None:
        for url in (
            "http://evil.example/view?filename=a.png&type=output",
            f"{self.fake.base_url}/upload/image?filename=a.png",
            f"{self.fake.base_url}/view?type=output",
            f"https://127.0.0.1:{self.fake.port}/view?filename=a.png",
        ):
            with self.assertRaises(BackendError) as caught:
                self.backend.fetch(PollResult(ProviderState.READY, result_url=url))
            self.assertEqual(caught.exception.error_class, ErrorClass.BAD_RESULT, url)
        self.assertEqual(self.fake.counts["views"], 0)

    def test_an_unreachable_server_is_a_network_error(self) -> None:
        with FakeComfyUI() as gone:
            config = gone.config()
        self.backend = ComfyUIBackend(config)
        self.assertFails(ErrorClass.NETWORK, retryable=True)


class ConfigurationTests(ComfyUITestCase):
    def test_it_needs_a_url(self) -> None:
        backend = ComfyUIBackend(BackendConfig())
        self.assertFalse(backend.is_configured())
        with self.assertRaises(BackendError) as caught:
            backend.submit(request())
        self.assertEqual(caught.exception.error_class, ErrorClass.AUTH)
        self.assertIn("COMFYUI_URL", caught.exception.message)

    def test_it_falls_back_to_the_comfyui_url_setting(self) -> None:
        with override_settings(**self.fake.env()):
            backend = ComfyUIBackend(accounts.settings_config("comfyui"))
        self.assertTrue(backend.is_configured())
        submission = backend.submit(request())
        self.assertIn(submission.task_id, self.fake.graphs)

    def test_bearer_and_basic_auth(self) -> None:
        with FakeComfyUI(token="s3cret") as guarded:
            self.assertEqual(
                ComfyUIBackend(guarded.config()).submit(request()).task_id
                in guarded.graphs,
                True,
            )
            with self.assertRaises(BackendError) as caught:
                ComfyUIBackend(BackendConfig(base_url=guarded.base_url)).submit(
                    request()
                )
            self.assertEqual(caught.exception.error_class, ErrorClass.AUTH)
        with FakeComfyUI(basic=("studio", "pw")) as guarded:
            backend = ComfyUIBackend(guarded.config())
            result = backend.poll(
                task_id=backend.submit(request(references=(ref(),))).task_id,
                poll_url=None,
            )
            self.assertEqual(backend.fetch(result)[1], "image/png")

    def test_a_workflow_dir_replaces_the_shipped_graph(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            graph = load_workflow("flux2_dev.json")
            graph["12"]["inputs"]["unet_name"] = "flux2-dev.safetensors"
            Path(folder, "flux2_dev.json").write_text(json.dumps(graph))
            backend = ComfyUIBackend(self.fake.config(workflow_dir=folder))
            submission = backend.submit(request())
            self.assertEqual(
                self.fake.graphs[submission.task_id]["12"]["inputs"]["unet_name"],
                "flux2-dev.safetensors",
            )

            del graph["25"]  # no RandomNoise: the backend cannot place the seed
            Path(folder, "flux2_dev.json").write_text(json.dumps(graph))
            with self.assertRaises(BackendError) as caught:
                backend.submit(request(references=(ref(),)))
        self.assertEqual(caught.exception.error_class, ErrorClass.INVALID_REQUEST)
        self.assertIn("RandomNoise", caught.exception.message)
        self.assertFalse(
            [k for k in self.fake.uploads if k[0] == "input"]
        )  # refused before uploading


class FakeValidationTests(ComfyUITestCase):
    """The fake refuses the graph mistakes a broken builder would make (so the tests above mean something)."""

    def post(self, graph: dict) -> httpx.Response:
        return httpx.post(
            f"{self.fake.base_url}/prompt", json={"prompt": graph, "client_id": "t"}
        )

    def good_graph(self) -> dict:
        name = self.backend.upload_reference(ref())
        return build_graph(
            load_workflow("flux2_dev.json"),
            prompt="p",
            seed=1,
            width=512,
            height=512,
            reference_images=(name,),
        )

    def test_a_good_graph_is_accepted(self) -> None:
        self.assertEqual(self.post(self.good_graph()).status_code, 200)

    def test_it_catches_builder_mistakes(self) -> None:
        def unchained(g: dict) -> None:
            g["22"]["inputs"]["conditioning"] = ["26", 0]

        def extra_reference(g: dict) -> None:
            g["99"] = {
                "class_type": "ReferenceLatent",
                "inputs": {"conditioning": ["26", 0]},
            }

        def empty_prompt(g: dict) -> None:
            g["6"]["inputs"]["text"] = ""

        def string_seed(g: dict) -> None:
            g["25"]["inputs"]["noise_seed"] = "1"

        def size_mismatch(g: dict) -> None:
            g["48"]["inputs"]["width"] = 1024

        def dangling_link(g: dict) -> None:
            g["8"]["inputs"]["vae"] = ["77", 0]

        def not_uploaded(g: dict) -> None:
            g[nodes(g, "LoadImage")[0]]["inputs"]["image"] = "flux-studio/missing.png"

        def no_class(g: dict) -> None:
            del g["16"]["class_type"]

        def unknown_class(g: dict) -> None:
            g["16"]["class_type"] = "KSamplerSelectX"

        def no_output(g: dict) -> None:
            del g["9"]

        def missing_input(g: dict) -> None:
            del g["13"]["inputs"]["sigmas"]

        for mistake in (
            unchained, extra_reference, empty_prompt, string_seed, size_mismatch, dangling_link,
            not_uploaded, no_class, unknown_class, no_output, missing_input,
        ):  # fmt: skip
            graph = self.good_graph()
            mistake(graph)
            response = self.post(graph)
            self.assertEqual(response.status_code, 400, mistake.__name__)
            self.assertIn("error", response.json())
        self.assertEqual(self.fake.counts["prompts"], 0)
