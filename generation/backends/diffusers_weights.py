"""The FLUX.2 weights on a worker's disk: which model folders a FLUX2_MODEL_PATH holds, no torch needed.

Part of the `diffusers` backend beside diffusers_pipeline.py (which loads what this finds), under
the same rules: no Django, nothing else of the studio, Python 3.11 compatible (.venv-ml runs it).
The folder layout and the `flux-studio.json` settings file are described in diffusers_pipeline.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODELS = ("flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b")
PIPELINE_CLASSES = {
    "flux-2-dev": "Flux2Pipeline",
    "flux-2-klein-4b": "Flux2KleinPipeline",
    "flux-2-klein-9b": "Flux2KleinPipeline",
}
# Folder names accepted for each model (compared case-insensitively): the studio's id, and the
# Hub repos' names (docs/providers.md §6.2).
FOLDER_NAMES = {
    "flux-2-dev": ("flux-2-dev", "FLUX.2-dev", "FLUX.2-dev-bnb-4bit"),
    "flux-2-klein-4b": ("flux-2-klein-4b", "FLUX.2-klein-4B"),
    "flux-2-klein-9b": ("flux-2-klein-9b", "FLUX.2-klein-9B"),
}
SETTINGS_FILE = "flux-studio.json"


@dataclass(frozen=True)
class ModelFolder:
    model: str
    path: Path
    pipeline_class: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    distilled: bool = False


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _model_named(name: str) -> str | None:
    lowered = name.lower()
    for model, names in FOLDER_NAMES.items():
        if lowered in (n.lower() for n in names):
            return model
    return None


def _inspect(folder: Path, model: str | None) -> tuple[ModelFolder | None, str]:
    """(the folder as a model, "") or (None, why it is not one)."""
    index = read_json(folder / "model_index.json")
    if index is None:
        return None, f"{folder} has no readable model_index.json"
    settings = read_json(folder / SETTINGS_FILE) or {}
    declared = settings.get("model")
    if isinstance(declared, str) and declared in MODELS:
        model = declared
    if model is None:
        model = _model_named(folder.name)
    if model is None:
        return None, (
            f"{folder}: cannot tell which model it holds; name the folder after one of "
            f'{", ".join(MODELS)} or set "model" in its {SETTINGS_FILE}'
        )
    found = index.get("_class_name")
    if found != PIPELINE_CLASSES[model]:
        return None, (
            f"{folder}: model_index.json is a {found}, {model} needs a "
            f"{PIPELINE_CLASSES[model]}"
        )
    distilled = bool(index.get("is_distilled", False))
    return ModelFolder(model, folder, found, settings, distilled), ""


def scan(root: str | os.PathLike[str]) -> tuple[dict[str, ModelFolder], list[str]]:
    """The models a weights folder holds, and a line for everything that was not usable."""
    base = Path(root).expanduser()
    if not str(root).strip():
        return {}, ["FLUX2_MODEL_PATH is not set"]
    if not base.is_dir():
        return {}, [f"FLUX2_MODEL_PATH={base} is not a folder"]
    found: dict[str, ModelFolder] = {}
    problems: list[str] = []
    if (base / "model_index.json").is_file():  # the path is one model's folder
        folder, why = _inspect(base, None)
        if folder is None:
            return {}, [why]
        return {folder.model: folder}, []
    for child in sorted(base.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if not (child / "model_index.json").is_file():
            continue
        folder, why = _inspect(child, None)
        if folder is None:
            problems.append(why)
        elif folder.model in found:
            problems.append(
                f"{child}: a second folder for {folder.model} (using {found[folder.model].path})"
            )
        else:
            found[folder.model] = folder
    if not found and not problems:
        problems.append(
            f"FLUX2_MODEL_PATH={base} holds no model folder (expected subfolders such as "
            f"{', '.join(MODELS)}, each with a model_index.json)"
        )
    return found, problems


def find_models(root: str | os.PathLike[str]) -> dict[str, ModelFolder]:
    return scan(root)[0]
