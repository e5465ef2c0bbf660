"""The local GPU backend: FLUX.2 [dev] and [klein] in-process with diffusers (docs/providers.md §6).

Synchronous like `preview`: submit() runs the pipeline and returns the finished PNG in a
Submission whose result is READY, so the engine stores it in the same step. All of the torch
work lives in diffusers_pipeline.py (no Django, Python 3.11 compatible, tested in .venv-ml by
tests/ml); this module is the studio's side: capabilities, rules, price, errors. It imports
without torch: torch and diffusers are only imported when a job runs.

Where it runs: a generation's submit goes to the Celery queue `gpu` (`celery_queue` below;
generation/tasks.py routes it), served by one worker process per GPU:

    celery -A studio worker -Q gpu -c 1

That worker keeps one pipeline resident between jobs (the first job pays the load). Its
concurrency cap, ENGINE_CONCURRENCY_DIFFUSERS (default 1), is the number of GPU workers.

Configuration (`BackendConfig`; without a workspace account, from the settings named here):
    base_url    the weights folder, FLUX2_MODEL_PATH (layout: diffusers_pipeline.py); the models
                served are the ones it holds
    extra       "models": FLUX2_MODELS, a comma list of the models the GPU workers hold, for
                    processes that have no weights folder (a web server on another machine):
                    it then counts as configured and validates against those models;
                "price_per_image": USD per image for routing and spend (DIFFUSERS_PRICE_PER_IMAGE,
                    default 0: the GPU is already paid for);
                "offload": FLUX2_OFFLOAD, auto | none | model | sequential (diffusers_pipeline.py)

Rules: sides 64-2048 px in steps of 16, at most 4 MP (BFL's FLUX.2 limits, docs/providers.md §1.8; the
pipelines floor sizes to multiples of 16); references at least 64 px a side and at most 8:1
(the pipelines' own check), up to 6 for [dev] (BFL's recommendation) and 4 for [klein];
`steps` 1-50 on both, `guidance` 1.5-10 on [dev] only: the [klein] 4B/9B releases are
step-distilled and diffusers ignores their guidance (docs/providers.md §6.2). Defaults: [dev] 28 steps,
guidance 4; [klein] 4 steps.

Errors: missing weights or a missing torch/diffusers are configuration (AUTH, not retried); a
refused input is INVALID_REQUEST; out of memory is PROVIDER_ERROR and retryable (the engine backs
off; a size that never fits fails after the retries); a Celery soft time limit is TIMEOUT.
"""

from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal, InvalidOperation

from generation.backends import diffusers_pipeline as pipeline
from generation.backends import diffusers_weights as weights
from generation.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    ModelSpec,
    ParamRule,
    PollResult,
    ProviderState,
    RuleViolation,
    Submission,
)

ENV_PATH = "FLUX2_MODEL_PATH"
ENV_MODELS = "FLUX2_MODELS"
ENV_PRICE = "DIFFUSERS_PRICE_PER_IMAGE"
ENV_OFFLOAD = "FLUX2_OFFLOAD"
QUEUE = "gpu"
SEED_LIMIT = 2**53
MAX_MEGAPIXELS = 4 * 1024 * 1024 / 1_000_000  # 2048×2048, as BFL counts 4 MP
MIN_REFERENCE_SIDE = 64
MAX_REFERENCE_ASPECT = 8

_DEV_RULES = {
    "steps": ParamRule("int", 1, 50),
    "guidance": ParamRule("float", 1.5, 10),
}
_KLEIN_RULES = {"steps": ParamRule("int", 1, 50)}


def _spec(model: str, max_references: int, rules: dict[str, ParamRule]) -> ModelSpec:
    return ModelSpec(
        model=model,
        provider_model=weights.PIPELINE_CLASSES[model],
        max_references=max_references,
        max_megapixels=MAX_MEGAPIXELS,
        min_side=64,
        max_side=2048,
        dimension_step=16,
        params=frozenset(rules),
        param_rules=rules,
    )


MODELS: dict[str, ModelSpec] = {
    "flux-2-dev": _spec("flux-2-dev", 6, _DEV_RULES),
    "flux-2-klein-4b": _spec("flux-2-klein-4b", 4, _KLEIN_RULES),
    "flux-2-klein-9b": _spec("flux-2-klein-9b", 4, _KLEIN_RULES),
}

# PipelineError kinds → the studio's error classes (retryable as the PipelineError says).
_ERRORS = {
    "missing_weights": ErrorClass.AUTH,
    "unavailable": ErrorClass.AUTH,
    "invalid": ErrorClass.INVALID_REQUEST,
    "out_of_memory": ErrorClass.PROVIDER_ERROR,
    "timeout": ErrorClass.TIMEOUT,
    "failed": ErrorClass.PROVIDER_ERROR,
}


class DiffusersBackend(Backend):
    name = "diffusers"
    label = "Local GPU (diffusers)"
    # generation/tasks.py sends this backend's submits to their own Celery queue.
    celery_queue = QUEUE

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        extra = config.extra or {}
        self.model_path = config.base_url.strip()
        declared = extra.get("models") or ""
        self.declared = tuple(
            m.strip() for m in declared.split(",") if m.strip() in MODELS
        )
        price = extra.get("price_per_image") or "0"
        try:
            self.price_per_image = Decimal(price)
        except InvalidOperation:
            self.price_per_image = Decimal(0)
        self.offload = (extra.get("offload") or "auto").strip().lower()
        self._scanned: tuple[dict[str, weights.ModelFolder], list[str]] | None = None

    # Configuration

    def _scan(self) -> tuple[dict[str, weights.ModelFolder], list[str]]:
        if self._scanned is None:
            self._scanned = weights.scan(self.model_path)
        return self._scanned

    def served_models(self) -> tuple[str, ...]:
        """The models this process can name: the folder's, else FLUX2_MODELS, else none."""
        if self.model_path:
            found = self._scan()[0]
            if found:
                return tuple(m for m in MODELS if m in found)
        return self.declared

    def configuration_problem(self) -> str | None:
        """Why this backend cannot run here, in a sentence; None when it can."""
        if not self.model_path:
            if self.declared:
                return None  # the GPU workers hold the weights; they check at submit
            return (
                f"{ENV_PATH} is not set: point it at the folder with the FLUX.2 weights "
                f"(one subfolder per model: {', '.join(MODELS)})."
            )
        found, problems = self._scan()
        if not found:
            return "; ".join(problems) + "."
        if runtime := pipeline.runtime_problem():
            return runtime + "."  # names stay as spelled: torch, diffusers
        return None

    def is_configured(self) -> bool:
        return self.configuration_problem() is None

    # Capabilities, rules, price

    def capabilities(self) -> Capabilities:
        # Unconfigured, it still names every model it could serve, so rules and messages apply.
        served = self.served_models() or tuple(MODELS)
        return Capabilities(
            models={m: MODELS[m] for m in served},
            calls_back=False,
            can_cancel=False,
            synchronous=True,
        )

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if not request.prompt or not request.prompt.strip():
            raise RuleViolation("prompt", "The prompt is empty.")
        if request.seed is not None and (
            isinstance(request.seed, bool)
            or not isinstance(request.seed, int)
            or not 0 <= request.seed < SEED_LIMIT
        ):
            raise RuleViolation(
                "seed", f"seed {request.seed!r} must be a whole number from 0 to 2^53."
            )
        for index, ref in enumerate(request.references, start=1):
            short, long = sorted((ref.width, ref.height))
            if short < MIN_REFERENCE_SIDE:
                raise RuleViolation(
                    "reference_size",
                    f"reference {index} is {ref.width}×{ref.height}: {self.label} needs at "
                    f"least {MIN_REFERENCE_SIDE} px on each side.",
                )
            if long > MAX_REFERENCE_ASPECT * short:
                raise RuleViolation(
                    "reference_aspect",
                    f"reference {index} is {ref.width}×{ref.height}: {self.label} takes "
                    f"aspect ratios up to {MAX_REFERENCE_ASPECT}:1.",
                )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """Self-hosted: the configured price per image (default 0)."""
        return self.price_per_image

    # Protocol

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        if not self.model_path:
            raise BackendError(
                ErrorClass.AUTH,
                f"{ENV_PATH} is not set on this worker; {self.label} runs on the GPU "
                f"workers (celery -A studio worker -Q {QUEUE} -c 1) that hold the weights.",
            )
        if problem := self.configuration_problem():
            raise BackendError(ErrorClass.AUTH, problem)
        seed = (
            request.seed
            if request.seed is not None
            else secrets.randbelow(2**32)  # reported back like a provider's seed
        )
        steps = request.params.get("steps")
        guidance = request.params.get("guidance")
        job = pipeline.Job(
            model=request.model,
            prompt=request.prompt,
            width=request.width,
            height=request.height,
            seed=seed,
            steps=int(steps) if steps is not None else None,
            guidance=float(guidance) if guidance is not None else None,
            references=tuple(ref.content for ref in request.references),
        )
        try:
            output = pipeline.generate(self.model_path, job, offload=self.offload)
        except pipeline.PipelineError as exc:
            raise BackendError(
                _ERRORS.get(exc.kind, ErrorClass.PROVIDER_ERROR),
                exc.message,
                retryable=exc.retryable,
                details={"kind": exc.kind},
            ) from exc
        digest = hashlib.sha256(
            f"{request.model}|{seed}|{request.width}x{request.height}|{request.prompt}".encode()
        ).hexdigest()[:24]
        result = PollResult(
            ProviderState.READY,
            progress=1.0,
            result_bytes=output.png,
            content_type="image/png",
            cost=self.price_per_image,
            seed=output.seed,
            provider_prompt=request.prompt,
            raw={
                "device": output.device,
                "dtype": output.dtype,
                "steps": output.steps,
                "guidance": output.guidance,
                "load_seconds": round(output.load_seconds, 3),
                "run_seconds": round(output.run_seconds, 3),
            },
        )
        return Submission(
            task_id=f"diffusers-{digest}", cost=self.price_per_image, result=result
        )

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        # Nothing is kept between calls: a result lost before it was stored is generated again.
        error = BackendError(
            ErrorClass.NOT_FOUND,
            f"{self.label} keeps no results; submit again.",
            retryable=False,
        )
        return PollResult(ProviderState.FAILED, error=error)
