"""Where a batch can run: the workspace's configured backends and models, and their labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from generation import accounts
from generation.backends import registry
from generation.backends.base import Backend
from generation.batches.spec import Target

# Backends listed first in the builder: the offline one always works.
_BACKEND_ORDER = ("preview", "bfl", "fal", "replicate", "cloudflare", "comfyui")


def max_batch_size() -> int:
    return int(getattr(settings, "STUDIO_BATCH_MAX_SIZE", 1000))


@dataclass(frozen=True)
class TargetOption:
    backend: str
    model: str
    backend_label: str
    model_label: str

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.model}"

    @property
    def label(self) -> str:
        return f"{self.backend_label} · {self.model_label}"


def _configured_backend(*, workspace_id: int, name: str) -> Backend | None:
    try:
        backend, _account = accounts.backend_for(
            workspace_id=workspace_id, backend=name
        )
    except Exception:  # unknown name, undecryptable key: not usable, so not offered
        return None
    return backend if backend.is_configured() else None


def target_options(*, workspace: Any) -> list[TargetOption]:
    """Every backend/model pair the workspace can use now (the preview backend always)."""
    names = sorted(
        registry.BACKENDS,
        key=lambda n: (
            _BACKEND_ORDER.index(n) if n in _BACKEND_ORDER else len(_BACKEND_ORDER),
            n,
        ),
    )
    options = []
    for name in names:
        backend = _configured_backend(workspace_id=workspace.pk, name=name)
        if backend is None:
            continue
        for model in backend.capabilities().models:
            options.append(
                TargetOption(
                    name, model, backend.label, registry.MODELS.get(model, model)
                )
            )
    return options


def target_label(target: Target) -> str:
    backend_cls = registry.BACKENDS.get(target.backend)
    backend = backend_cls.label if backend_cls is not None else target.backend
    return f"{backend} · {registry.MODELS.get(target.model, target.model)}"
