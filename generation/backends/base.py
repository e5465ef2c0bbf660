"""The one interface every FLUX.2 backend implements.

A backend is a small stateless object. It declares what it can do (`capabilities`), refuses a
request that breaks its rules before anything is sent (`validate`), prices a request
(`estimate_cost`), and speaks its provider's protocol in short, non-blocking steps:

    submit()  -> Submission        one HTTP call; the provider's task id comes back at once
    poll()    -> PollResult        one HTTP call; never waits for the provider to finish
    fetch()   -> bytes             downloads a finished result from the provider's own hosts
    cancel()                       best effort, where the provider allows it

Synchronous providers (preview, Cloudflare, in-process diffusers) return a Submission whose
`result` is already a finished PollResult, so the engine goes straight to ingesting.

Every failure is a `BackendError` carrying our error class, the provider's message, whether it
is worth retrying and, for 429s, the provider's Retry-After. The engine (generation/engine/policy.py and
generation/tasks.py) decides what to do with it; backends never sleep and never retry.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar


class ErrorClass(enum.StrEnum):
    AUTH = "auth"  # bad or missing key, no permission: fix the configuration
    QUOTA = "quota"  # out of credits / payment problem
    RATE_LIMITED = "rate_limited"  # 429: too many active tasks; retry after a pause
    INVALID_REQUEST = (
        "invalid_request"  # the provider (or our rule check) refused the request
    )
    MODERATED = (
        "moderated"  # prompt/input or output refused by the provider's moderation
    )
    PROVIDER_ERROR = "provider_error"  # 5xx, provider-side processing error
    NETWORK = "network"  # connection refused/dropped, DNS, TLS
    TIMEOUT = "timeout"  # the HTTP call or the whole generation took too long
    NOT_FOUND = "not_found"  # the provider no longer knows the task
    EXPIRED = "expired"  # the result URL expired before we downloaded it
    BAD_RESULT = "bad_result"  # the provider answered, but not with a usable image/JSON


class BackendError(Exception):
    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"


class RuleViolation(BackendError):
    """The request breaks one of the backend's documented rules; nothing was sent."""

    def __init__(
        self, rule: str, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(
            ErrorClass.INVALID_REQUEST, message, retryable=False, details=details
        )
        self.rule = rule


@dataclass(frozen=True)
class ReferenceInput:
    """A reference image as sent to a provider (already cleaned by the reference library)."""

    role: str
    content: bytes
    content_type: str
    width: int
    height: int
    name: str = ""

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


@dataclass(frozen=True)
class GenerationRequest:
    model: str  # the studio's model vocabulary: "flux-2-pro", "flux-2-flex", "flux-2-klein-4b", ...
    prompt: str  # the resolved prompt; a structured prompt arrives as its JSON text
    width: int
    height: int
    seed: int | None = None
    references: tuple[ReferenceInput, ...] = ()
    # Optional model parameters: steps, guidance, prompt_upsampling, safety_tolerance, output_format.
    params: Mapping[str, Any] = field(default_factory=dict)
    # Brand colours (#RRGGBB) for backends that draw them (the preview backend).
    palette: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_secret: str | None = None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


@dataclass(frozen=True)
class ParamRule:
    """The values one optional model parameter accepts: kind "int", "float", "bool" or "choice"."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why `value` is not accepted, or None when it is."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "choice":
            return (
                None
                if value in self.choices
                else f"must be one of {', '.join(self.choices)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.kind == "int" and value != int(value):
            return "must be a whole number"
        low = self.minimum if self.minimum is not None else float("-inf")
        high = self.maximum if self.maximum is not None else float("inf")
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}"
        return None


MEGAPIXEL = 1024 * 1024  # pixels in one billed megapixel (BFL's and fal's unit)


def billed_megapixels(width: int, height: int) -> int:
    """Whole megapixels (1024×1024 px each), rounded up, at least 1."""
    return max(1, -(-(width * height) // MEGAPIXEL))


@dataclass(frozen=True)
class MegapixelPrice:
    """The first output megapixel, each further output megapixel, each input megapixel (in one
    unit: USD, or BFL's cents)."""

    first: Decimal
    extra: Decimal
    input: Decimal

    def cost(
        self, output: tuple[int, int], inputs: Iterable[tuple[int, int]]
    ) -> Decimal:
        """first + (output MP − 1) × extra + input MP × input, each image rounded up."""
        output_mp = billed_megapixels(*output)
        input_mp = sum(billed_megapixels(width, height) for width, height in inputs)
        return self.first + (output_mp - 1) * self.extra + input_mp * self.input


def check_prompt_and_seed(request: GenerationRequest) -> None:
    """RuleViolation for an empty prompt or a seed that is not a whole number."""
    if not request.prompt or not request.prompt.strip():
        raise RuleViolation("prompt", "The prompt is empty.")
    if request.seed is not None and (
        isinstance(request.seed, bool) or not isinstance(request.seed, int)
    ):
        raise RuleViolation("seed", f"seed {request.seed!r} must be a whole number.")


@dataclass(frozen=True)
class ModelSpec:
    model: str  # studio vocabulary id
    provider_model: str  # the provider's own id/path
    max_references: int
    max_megapixels: float = 4.0
    min_side: int = 64
    max_side: int = 2048
    dimension_step: int = 16
    params: frozenset[str] = frozenset()  # supported optional parameters
    # Accepted values per parameter; validate() refuses others before anything is sent.
    param_rules: Mapping[str, ParamRule] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Capabilities:
    models: Mapping[str, ModelSpec]
    calls_back: bool = False  # the provider can deliver webhooks
    can_cancel: bool = False
    synchronous: bool = False  # submit() returns the finished result


class ProviderState(enum.StrEnum):
    PENDING = "pending"  # queued or running at the provider
    READY = "ready"  # finished: result_url or result_bytes is set
    FAILED = "failed"  # terminal; see error


@dataclass(frozen=True)
class PollResult:
    state: ProviderState
    progress: float | None = None
    result_url: str | None = None
    result_bytes: bytes | None = None
    content_type: str | None = None
    cost: Decimal | None = None  # USD, when the provider reports it
    seed: int | None = None
    provider_prompt: str | None = None  # the final prompt, e.g. after upsampling
    error: BackendError | None = None  # set when state is FAILED
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Seconds the provider itself says it worked on the task (BFL result.duration, Replicate
    # metrics.predict_time): what the engine's first-poll estimate learns from first.
    duration: float | None = None


@dataclass(frozen=True)
class Submission:
    task_id: str
    poll_url: str | None = None
    cost: Decimal | None = None  # USD, when the submit answer carries it
    result: PollResult | None = None  # synchronous backends answer at once
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendConfig:
    """Credentials and endpoints, resolved from the workspace's provider account or the operator's settings."""

    api_key: str = ""
    base_url: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class Backend:
    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def is_configured(self) -> bool:
        return True

    def validate(self, request: GenerationRequest) -> None:
        """Raise RuleViolation naming the broken rule; nothing has been sent at this point."""
        caps = self.capabilities()
        spec = caps.models.get(request.model)
        if spec is None:
            served = ", ".join(sorted(caps.models))
            raise RuleViolation(
                "model",
                f"{self.label} cannot serve {request.model} (it serves {served}).",
            )
        if len(request.references) > spec.max_references:
            raise RuleViolation(
                "max_references",
                f"{request.model} on {self.label} takes at most {spec.max_references} reference images "
                f"({len(request.references)} given).",
            )
        for side_name, side in (("width", request.width), ("height", request.height)):
            if side < spec.min_side or side > spec.max_side:
                raise RuleViolation(
                    "dimensions",
                    f"{side_name} {side} is outside {spec.min_side}–{spec.max_side} px on {self.label}.",
                )
            if side % spec.dimension_step:
                raise RuleViolation(
                    "dimension_step",
                    f"{side_name} {side} must be a multiple of {spec.dimension_step} on {self.label}.",
                )
        if request.megapixels > spec.max_megapixels + 1e-9:
            raise RuleViolation(
                "max_megapixels",
                f"{request.width}×{request.height} is {request.megapixels:.2f} MP; {self.label} allows at most "
                f"{spec.max_megapixels:g} MP.",
            )
        unknown = set(request.params) - spec.params
        if unknown:
            raise RuleViolation(
                "params",
                f"{request.model} on {self.label} does not take: {', '.join(sorted(unknown))}.",
            )
        for name, value in request.params.items():
            rule = spec.param_rules.get(name)
            if rule is None or value is None:
                continue
            if problem := rule.problem(value):
                raise RuleViolation(
                    "param_range",
                    f"{name} {value!r} {problem} on {request.model} ({self.label}).",
                    details={"param": name, "value": value},
                )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        """Price in USD from the provider's published pricing (docs/providers.md)."""
        raise NotImplementedError

    def submit(self, request: GenerationRequest) -> Submission:
        raise NotImplementedError

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        raise NotImplementedError

    def fetch(self, result: PollResult) -> tuple[bytes, str]:
        """Download a READY result: (bytes, content type). Raises BackendError (EXPIRED, BAD_RESULT...)."""
        if result.result_bytes is not None:
            return (
                result.result_bytes,
                result.content_type or "application/octet-stream",
            )
        raise NotImplementedError

    def cancel(self, *, task_id: str, poll_url: str | None) -> bool:
        return False

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, secret: str
    ) -> tuple[str, PollResult]:
        """Verify and parse a provider callback: (task id, result). Raises BackendError when invalid."""
        raise NotImplementedError
