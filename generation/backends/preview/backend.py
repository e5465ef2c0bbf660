"""PreviewBackend: synchronous, offline, free: submit() answers the finished draft."""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal

from generation.backends.base import (
    Backend,
    BackendError,
    Capabilities,
    ErrorClass,
    GenerationRequest,
    PollResult,
    ProviderState,
    Submission,
)
from generation.backends.preview.render import render, request_digest
from generation.backends.preview.spec import MODELS


class PreviewBackend(Backend):
    name = "preview"
    label = "Preview (offline draft)"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=MODELS, calls_back=False, can_cancel=False, synchronous=True
        )

    def estimate_cost(self, request: GenerationRequest) -> Decimal:
        return Decimal(0)

    def submit(self, request: GenerationRequest) -> Submission:
        self.validate(request)
        seed = (
            request.seed
            if request.seed is not None
            else random.SystemRandom().randrange(2**32)
        )
        data = render(request, seed)
        task_id = (
            "preview-"
            + hashlib.sha256(f"{seed}|{request_digest(request)}".encode()).hexdigest()[
                :24
            ]
        )
        result = PollResult(
            ProviderState.READY,
            progress=1.0,
            result_bytes=data,
            content_type="image/png",
            cost=Decimal(0),
            seed=seed,
            provider_prompt=request.prompt,
        )
        return Submission(task_id=task_id, cost=Decimal(0), result=result)

    def poll(self, *, task_id: str, poll_url: str | None) -> PollResult:
        # Nothing is kept between calls: a preview lost before ingesting is simply drawn again.
        error = BackendError(
            ErrorClass.NOT_FOUND,
            "Preview results are not kept; submit again.",
            retryable=False,
        )
        return PollResult(ProviderState.FAILED, error=error)
