"""Names the batch modules share: state shorthands, the axes, BatchRefused, failed and retryable states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import Exists, OuterRef

from generation.models import (
    Batch,
    BatchState,
    Generation,
    GenerationState,
)

S = GenerationState


B = BatchState


FIELD_BUDGET = "budget"


# Failures a retry may fix; moderation is the provider's final word and is never retried.
RETRYABLE_STATES = (S.FAILED, S.EXPIRED)


FAILED_STATES = (S.FAILED, S.MODERATED, S.EXPIRED)


class BatchRefused(Exception):
    """Nothing was stored: the problems, keyed by the form field that caused them."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors = {key: list(messages) for key, messages in errors.items()}
        super().__init__(" ".join(m for ms in self.errors.values() for m in ms))

    @property
    def messages(self) -> list[str]:
        return [m for ms in self.errors.values() for m in ms]


def _unretried(batch: Batch) -> Any:
    retried = Generation.objects.filter(parent=OuterRef("pk"), batch=batch)
    return Generation.objects.filter(batch=batch).exclude(Exists(retried))


AXIS_SEEDS, AXIS_TARGETS, AXIS_SIZES = "seeds", "targets", "sizes"
