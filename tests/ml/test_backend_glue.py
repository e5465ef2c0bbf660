"""The studio's DiffusersBackend on top of the real pipeline code (Python 3.11, no Django).

generation/backends/diffusers.py and base.py import no Django, so the Backend itself runs here,
where torch is: submit() through diffusers_pipeline to a READY PollResult with PNG bytes.
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

# No fallback: if the studio's modules stop being Python 3.11 code, this import fails and so does
# scripts/ml-tests.sh (tests/generation/test_backends_python311.py says so in the main suite too).
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


def request(**fields: object) -> GenerationRequest:
    values: dict[str, object] = {
        "model": "flux-2-klein-4b",
        "prompt": "a lighthouse at dusk",
        "width": 64,
        "height": 64,
        "seed": 42,
        "params": {"steps": 2},
    }
    values.update(fields)
    return GenerationRequest(**values)  # type: ignore[arg-type]


def test_submit_returns_the_finished_png(models_root: Path) -> None:
    backend = DiffusersBackend(BackendConfig(base_url=str(models_root)))
    assert backend.is_configured(), backend.configuration_problem()
    assert sorted(backend.capabilities().models) == ["flux-2-dev", "flux-2-klein-4b"]
    submission = backend.submit(request())
    result = submission.result
    assert result is not None and result.state == ProviderState.READY
    assert result.content_type == "image/png" and result.seed == 42
    assert result.cost == Decimal(0) and submission.cost == Decimal(0)
    assert result.raw["device"] == "cpu" and result.raw["steps"] == 2
    image = Image.open(io.BytesIO(result.result_bytes or b""))
    assert image.size == (64, 64)
    assert backend.fetch(result)[0] == result.result_bytes
    again = backend.submit(request())
    assert again.result is not None and again.result.result_bytes == result.result_bytes
    assert again.task_id == submission.task_id


def test_dev_with_references_and_a_drawn_seed(models_root: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (0, 120, 200)).save(out, format="PNG")
    ref = ReferenceInput("product", out.getvalue(), "image/png", 96, 64)
    backend = DiffusersBackend(BackendConfig(base_url=str(models_root)))
    submission = backend.submit(
        request(
            model="flux-2-dev",
            seed=None,
            references=(ref,),
            params={"steps": 2, "guidance": 3.5},
        )
    )
    assert submission.result is not None
    assert isinstance(submission.result.seed, int)  # drawn here, reported back
    assert submission.result.raw["guidance"] == 3.5


def test_rules_and_configuration_errors(models_root: Path, tmp_path: Path) -> None:
    backend = DiffusersBackend(BackendConfig(base_url=str(models_root)))
    with pytest.raises(RuleViolation) as caught:
        backend.submit(request(model="flux-2-klein-9b"))
    assert caught.value.rule == "model"
    with pytest.raises(RuleViolation):
        backend.submit(
            request(params={"guidance": 3.0})
        )  # distilled [klein]: no guidance
    missing = DiffusersBackend(BackendConfig(base_url=str(tmp_path / "none")))
    assert not missing.is_configured()
    with pytest.raises(BackendError) as failed:
        missing.submit(request())
    assert failed.value.error_class == ErrorClass.AUTH
    assert "is not a folder" in failed.value.message
