"""tests/ml: the diffusers backend's real loading and calling code on CPU, offline.

Tiny randomly initialised FLUX.2 pipelines are built and saved once per session (tiny_flux2.py)
into a folder laid out as FLUX2_MODEL_PATH expects; the tests load them through
generation/backends/diffusers_pipeline.py exactly as the GPU worker does. No network: the Hub is
switched off and any socket connection fails the test that makes it.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _no_network():
    """Any socket connection fails, from building the tiny pipelines to the last test."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(
            f"tests/ml must not use the network (connect to {address})"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield


@pytest.fixture(scope="session")
def models_root(_no_network: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FLUX2_MODEL_PATH with a tiny flux-2-dev and a tiny flux-2-klein-4b."""
    import tiny_flux2

    root = tmp_path_factory.mktemp("weights")
    tiny_flux2.save_model(root, "flux-2-dev")
    tiny_flux2.save_model(root, "flux-2-klein-4b")
    return root


@pytest.fixture
def copy_model(models_root: Path, tmp_path: Path):
    """copy_model(model, folder=None): a private copy of one saved model, to damage or edit."""

    def copy(model: str, folder: str | None = None) -> Path:
        target = tmp_path / "weights" / (folder or model)
        shutil.copytree(models_root / model, target)
        return target

    return copy


@pytest.fixture(autouse=True)
def _unload_after():
    yield
    from generation.backends import diffusers_pipeline

    diffusers_pipeline.unload()
