"""In-process FLUX.2 with diffusers: find the local weights, load a pipeline once, generate PNGs.

This module is the part of the `diffusers` backend that touches torch. It imports no Django and
nothing else of the studio, and it stays Python 3.11 compatible (no PEP 695 syntax; ruff checks it
at py311): the studio runs on Python >= 3.12, but the only CPU torch on this machine is a
Python 3.11 wheel, so its tests run in a separate venv (.venv-ml, tests/ml) against this very
module. torch and diffusers are imported lazily, inside the functions that need them, so importing
this module is free and works without them.

Weights (`FLUX2_MODEL_PATH`, a folder on the worker's disk; nothing is ever downloaded):

    $FLUX2_MODEL_PATH/
        flux-2-dev/          diffusers-format folder (model_index.json, transformer/, vae/, ...)
        flux-2-klein-4b/
        flux-2-klein-9b/

One subfolder per model, named by the studio's model id or by the Hub repo's name, as
`hf download black-forest-labs/FLUX.2-klein-4B --local-dir $FLUX2_MODEL_PATH/FLUX.2-klein-4B`
leaves it (FOLDER_NAMES). FLUX2_MODEL_PATH may also point at one such folder itself; its model is
then read from its `flux-studio.json` ("model") or from its name. A folder whose model_index.json
names another pipeline class than the model needs is ignored (and reported by `folder_problems`).

An optional `flux-studio.json` in a model folder holds per-folder settings:
    {"model": "flux-2-klein-4b",                       the model, for a folder named otherwise
     "defaults": {"steps": 4, "guidance": 1.0},        when the request gives none
     "call": {"text_encoder_out_layers": [9, 18, 27],  passed to the pipeline call as they are
              "max_sequence_length": 512}}             (only these two keys)

Runtime: cuda when available (bfloat16), else cpu (float32). One pipeline is resident per process,
loaded at the first job and kept (a request for another model unloads it first); a lock runs one
job at a time, which is what the backend's Celery queue (`gpu`, one worker process per GPU) wants
anyway. `offload` ("auto", "none", "model", "sequential") decides between `pipe.to("cuda")` and
diffusers' CPU offload; "auto" offloads when the weights on disk would not fit in 85% of the
GPU's memory ([dev] bf16 does not fit an 80 GB card with its text encoder; docs/providers.md §6.4).

[dev]'s tokenizer is a `PixtralProcessor`, which transformers only builds with torchvision. Without
torchvision the folder's tokenizer files are loaded as a plain tokenizer instead: the pipeline
only calls `apply_chat_template` on it for text prompts, and reference images never reach it
(they are VAE-encoded through diffusers' own image processor), so text-to-image and references
both work; only caption upsampling, which the backend does not offer, would need the processor.

Errors are `PipelineError`s with a `kind`: "missing_weights" (no folder, no model, files missing),
"unavailable" (torch/diffusers or an optional dependency missing), "invalid" (the pipeline
refused an input, e.g. a reference under 64 px), "out_of_memory" (worth a retry, or a smaller
size / offload), "timeout" (Celery's soft time limit hit the call) and "failed".
"""

from __future__ import annotations

import gc
import importlib.util
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The models, their folders and how a folder is recognised: diffusers_weights.py (no torch).
from .diffusers_weights import (  # noqa: E402  (a sibling: .venv-ml imports both, no Django)
    MODELS,
    ModelFolder,
    read_json,
    scan,
)

CALL_KEYS = ("text_encoder_out_layers", "max_sequence_length")
# BFL: 28 steps is "a good trade-off" for [dev]; the [klein] releases are step-distilled (4 steps,
# guidance off). A non-distilled [klein] folder gets diffusers' own defaults.
DEFAULT_STEPS = {"flux-2-dev": 28, "klein-distilled": 4, "klein": 50}
DEFAULT_GUIDANCE = {"flux-2-dev": 4.0, "klein-distilled": 1.0, "klein": 4.0}
OFFLOAD_MODES = ("auto", "none", "model", "sequential")
_PROCESSOR_CLASSES = ("PixtralProcessor", "AutoProcessor")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


class PipelineError(Exception):
    """A failure with a kind the backend maps onto the studio's error classes."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable


@dataclass
class Resident:
    """The pipeline this process keeps loaded, and where it runs."""

    pipe: Any
    folder: ModelFolder
    device: str
    dtype: str
    key: tuple[Any, ...]


@dataclass(frozen=True)
class Job:
    model: str
    prompt: str
    width: int
    height: int
    seed: int
    steps: int | None = None
    guidance: float | None = None
    references: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Output:
    png: bytes
    width: int
    height: int
    seed: int
    steps: int
    guidance: float
    device: str
    dtype: str
    load_seconds: float  # 0 when the resident pipeline was reused
    run_seconds: float


def runtime_problem() -> str | None:
    """Why torch and diffusers cannot run in this interpreter, or None.

    Only looks the packages up (importing torch takes seconds and a lot of memory, too much for
    a web process asking whether the backend is configured); a broken install shows at load.
    """
    import sys

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    missing = [
        name
        for name in ("torch", "diffusers", "transformers")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return (
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed "
            f"for Python {version} here (pip install 'flux-studio[diffusers]' on the GPU worker)"
        )
    return None


# --- loading ------------------------------------------------------------------------------------


_LOCK = threading.RLock()
_STATE: dict[str, Any] = {"resident": None, "loads": 0}


def _runtime() -> tuple[Any, Any]:
    """(torch, diffusers), imported offline."""
    # Never reach the Hub: huggingface_hub reads these when it is first imported. This writes the
    # process environment for those libraries, which take no other switch before import; it reads
    # no configuration of ours (that arrives in the BackendConfig), and setdefault leaves an
    # operator's own value alone.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        # No stubs, and not installed outside GPU workers (the `diffusers` extra): the ignores
        # say so, and stay quiet where they are installed.
        import diffusers  # type: ignore[import-not-found, unused-ignore]
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise PipelineError(
            "unavailable", f"torch and diffusers cannot be imported: {exc}"
        ) from exc
    return torch, diffusers


def pick_device() -> tuple[str, str]:
    """("cuda", "bfloat16") when a GPU is there, else ("cpu", "float32")."""
    torch, _ = _runtime()
    if torch.cuda.is_available():
        return "cuda", "bfloat16"
    return "cpu", "float32"


def _weights_bytes(folder: Path) -> int:
    return sum(
        f.stat().st_size
        for f in folder.rglob("*")
        if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES)
    )


def _placement(torch: Any, folder: Path, device: str, offload: str) -> str:
    """How the pipeline goes onto the device: "none" (all of it), "model" or "sequential"."""
    if device != "cuda":
        return "none"
    if offload != "auto":
        return offload
    total = torch.cuda.get_device_properties(0).total_memory
    return "model" if _weights_bytes(folder) > 0.85 * total else "none"


def _plain_tokenizer(folder: ModelFolder) -> Any | None:
    """A plain tokenizer for [dev] when its PixtralProcessor cannot be built (no torchvision)."""
    index = read_json(folder.path / "model_index.json") or {}
    entry = index.get("tokenizer")
    if not (isinstance(entry, list) and len(entry) == 2):
        return None
    if entry[1] not in _PROCESSOR_CLASSES:
        return None
    from transformers.utils import (  # type: ignore[import-not-found, unused-ignore]
        is_torchvision_available,
    )

    if is_torchvision_available():
        return None
    from transformers import (  # type: ignore[import-not-found, unused-ignore]
        AutoTokenizer,
    )

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder.path / "tokenizer", local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise PipelineError(
            "unavailable",
            f"{folder.model}'s tokenizer is a {entry[1]}, which needs torchvision (not "
            f"installed), and its files do not load as a plain tokenizer: {exc}",
        ) from exc
    return tokenizer


def _load(folder: ModelFolder, device: str, dtype_name: str, offload: str) -> Any:
    torch, diffusers = _runtime()
    cls = getattr(diffusers, folder.pipeline_class, None)
    if cls is None:
        raise PipelineError(
            "unavailable",
            f"this diffusers ({diffusers.__version__}) has no {folder.pipeline_class}; "
            "FLUX.2 needs diffusers >= 0.37 ([klein]) / 0.36 ([dev])",
        )
    tokenizer = _plain_tokenizer(folder)
    # diffusers checks a component passed in against the class model_index.json names, which
    # is the processor here: load without it (None), then register the plain one.
    overrides = {"tokenizer": None} if tokenizer is not None else {}
    try:
        pipe = cls.from_pretrained(
            folder.path,
            dtype=getattr(torch, dtype_name),
            local_files_only=True,
            **overrides,
        )
    except ImportError as exc:  # bitsandbytes for a 4-bit folder, torchvision, ...
        raise PipelineError(
            "unavailable", f"loading {folder.model} from {folder.path} needs: {exc}"
        ) from exc
    except (
        OSError
    ) as exc:  # a file missing ("no file named ..."), unreadable or damaged
        raise PipelineError(
            "missing_weights",
            f"the weights of {folder.model} in {folder.path} are missing or damaged: {exc}",
        ) from exc
    except ValueError as exc:
        raise PipelineError(
            "failed", f"cannot load {folder.model} from {folder.path}: {exc}"
        ) from exc
    if tokenizer is not None:
        pipe.register_modules(tokenizer=tokenizer)
    placement = _placement(torch, folder.path, device, offload)
    try:
        if placement == "model":
            pipe.enable_model_cpu_offload()
        elif placement == "sequential":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to(device)
    except Exception as exc:
        if _is_oom(exc):
            _free(torch)
            raise PipelineError(
                "out_of_memory",
                f"{folder.model} does not fit on the GPU; set FLUX2_OFFLOAD=model "
                f"(or sequential): {exc}",
            ) from exc
        raise
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load(
    root: str | os.PathLike[str], model: str, *, offload: str = "auto"
) -> tuple[Resident, float]:
    """The resident pipeline for `model` (loaded when needed) and the seconds the load took."""
    if offload not in OFFLOAD_MODES:
        raise PipelineError(
            "failed",
            f"FLUX2_OFFLOAD={offload!r}: expected one of {', '.join(OFFLOAD_MODES)}",
        )
    if model not in MODELS:
        raise PipelineError(
            "invalid", f"{model} is not a local FLUX.2 model ({', '.join(MODELS)})"
        )
    models, problems = scan(root)
    folder = models.get(model)
    if folder is None:
        held = ", ".join(sorted(models)) or "none"
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise PipelineError(
            "missing_weights",
            f"no weights for {model} under FLUX2_MODEL_PATH={root} (it holds: {held}){detail}",
        )
    device, dtype_name = pick_device()
    # The folder's model_index.json time: weights replaced on disk are loaded at the next job.
    stamp = (folder.path / "model_index.json").stat().st_mtime_ns
    key = (str(folder.path.resolve()), device, dtype_name, offload, stamp)
    with _LOCK:
        current: Resident | None = _STATE["resident"]
        if current is not None and current.key == key:
            return current, 0.0
        unload()  # one model resident: free the previous one before loading the next
        started = time.perf_counter()
        pipe = _load(folder, device, dtype_name, offload)
        current = Resident(pipe, folder, device, dtype_name, key)
        _STATE.update(resident=current, loads=_STATE["loads"] + 1)
        return current, time.perf_counter() - started


def unload() -> None:
    """Drop the resident pipeline and give its memory back."""
    with _LOCK:
        if _STATE["resident"] is None:
            return
        _STATE["resident"] = None
        torch = _runtime()[0]
        _free(torch)


def resident() -> tuple[Resident | None, int]:
    """(the resident pipeline or None, how many loads this process has done)."""
    with _LOCK:
        return _STATE["resident"], _STATE["loads"]


def _free(torch: Any) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or the CPU allocator giving up."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


# --- generating ---------------------------------------------------------------------------------


def _defaults(folder: ModelFolder) -> tuple[int, float]:
    kind = (
        folder.model
        if folder.model == "flux-2-dev"
        else ("klein-distilled" if folder.distilled else "klein")
    )
    defaults = folder.settings.get("defaults") or {}
    steps = defaults.get("steps", DEFAULT_STEPS[kind])
    guidance = defaults.get("guidance", DEFAULT_GUIDANCE[kind])
    return int(steps), float(guidance)


def _call_settings(folder: ModelFolder) -> dict[str, Any]:
    call = folder.settings.get("call") or {}
    out: dict[str, Any] = {}
    for key in CALL_KEYS:
        if key in call:
            value = call[key]
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _reference_images(references: tuple[bytes, ...]) -> list[Any]:
    from PIL import Image, UnidentifiedImageError

    images = []
    for index, content in enumerate(references, start=1):
        try:
            with Image.open(io.BytesIO(content)) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise PipelineError(
                "invalid", f"reference {index} is not a readable image: {exc}"
            ) from exc
    return images


def _png(image: Any, job: Job, steps: int, guidance: float) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "flux-studio diffusers backend")
    info.add_text("Model", job.model)
    info.add_text("Seed", str(job.seed))
    info.add_text("Steps", str(steps))
    info.add_text("Guidance", f"{guidance:g}")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def generate(
    root: str | os.PathLike[str], job: Job, *, offload: str = "auto"
) -> Output:
    """Run one job on the resident pipeline (loading it first when needed); PNG bytes back."""
    with _LOCK:  # one job at a time in this process
        current, load_seconds = load(root, job.model, offload=offload)
        folder, device = current.folder, current.device
        torch = _runtime()[0]
        steps, guidance = _defaults(folder)
        steps = job.steps if job.steps is not None else steps
        guidance = job.guidance if job.guidance is not None else guidance
        kwargs: dict[str, Any] = dict(
            prompt=job.prompt,
            width=job.width,
            height=job.height,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator(device=device).manual_seed(job.seed),
            **_call_settings(folder),
        )
        if job.references:
            kwargs["image"] = _reference_images(job.references)
        started = time.perf_counter()
        try:
            image = current.pipe(**kwargs).images[0]
        except Exception as exc:
            if _is_oom(exc):
                _free(torch)
                raise PipelineError(
                    "out_of_memory",
                    f"out of memory generating {job.width}×{job.height} with {job.model} "
                    f"on {device}: try a smaller size or FLUX2_OFFLOAD=model ({exc})",
                    retryable=True,
                ) from exc
            if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's, on the worker
                raise PipelineError(
                    "timeout",
                    f"{job.model} did not finish within the worker's time limit "
                    f"({job.width}×{job.height}, {steps} steps on {device})",
                ) from exc
            if isinstance(exc, ValueError):  # the pipeline's own input checks
                raise PipelineError("invalid", str(exc)) from exc
            raise PipelineError(
                "failed", f"{job.model} failed on {device}: {type(exc).__name__}: {exc}"
            ) from exc
        run_seconds = time.perf_counter() - started
        return Output(
            png=_png(image, job, steps, guidance),
            width=image.width,
            height=image.height,
            seed=job.seed,
            steps=steps,
            guidance=guidance,
            device=device,
            dtype=current.dtype,
            load_seconds=load_seconds,
            run_seconds=run_seconds,
        )
