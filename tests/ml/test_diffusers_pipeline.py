"""The diffusers backend's pipeline code, for real, on tiny FLUX.2 pipelines on the CPU."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from generation.backends import diffusers_pipeline as dp
from generation.backends import diffusers_weights as dw

MODELS = ("flux-2-klein-4b", "flux-2-dev")


def job(model: str, size: int = 32, seed: int = 7, **fields: object) -> dp.Job:
    values: dict[str, object] = {
        "model": model,
        "prompt": "a red bicycle leaning on a yellow wall",
        "width": size,
        "height": size,
        "seed": seed,
        "steps": 2,
    }
    values.update(fields)
    return dp.Job(**values)  # type: ignore[arg-type]


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def reference(width: int = 64, height: int = 96, colour=(200, 40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def test_the_saved_folder_is_what_flux2_model_path_expects(models_root: Path) -> None:
    found, problems = dw.scan(models_root)
    assert problems == []
    assert sorted(found) == ["flux-2-dev", "flux-2-klein-4b"]
    assert found["flux-2-dev"].pipeline_class == "Flux2Pipeline"
    assert found["flux-2-klein-4b"].pipeline_class == "Flux2KleinPipeline"
    assert not found["flux-2-klein-4b"].distilled  # diffusers' test config: CFG on


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", [32, 64])
def test_it_generates_a_png_of_the_size_asked(
    models_root: Path, model: str, size: int
) -> None:
    out = dp.generate(models_root, job(model, size))
    image = png_image(out.png)
    assert image.format == "PNG"
    assert image.size == (size, size) == (out.width, out.height)
    assert image.mode == "RGB"
    assert (out.device, out.dtype) == ("cpu", "float32")
    assert (out.seed, out.steps) == (7, 2)
    assert image.info["Model"] == model and image.info["Seed"] == "7"
    # A real render, not a flat fill: the random weights still make noise.
    assert len(set(image.tobytes())) > 1


@pytest.mark.parametrize("model", MODELS)
def test_the_same_seed_gives_the_same_bytes_another_seed_other_bytes(
    models_root: Path, model: str
) -> None:
    first = dp.generate(models_root, job(model, seed=1234)).png
    again = dp.generate(models_root, job(model, seed=1234)).png
    other = dp.generate(models_root, job(model, seed=1235)).png
    assert first == again
    assert first != other
    assert png_image(first).tobytes() != png_image(other).tobytes()


def test_the_pipeline_is_loaded_once_and_one_model_stays_resident(
    models_root: Path,
) -> None:
    _, loads = dp.resident()
    first = dp.generate(models_root, job("flux-2-klein-4b"))
    second = dp.generate(models_root, job("flux-2-klein-4b", seed=8))
    current, after = dp.resident()
    assert after == loads + 1
    assert first.load_seconds > 0 and second.load_seconds == 0
    assert current is not None and current.folder.model == "flux-2-klein-4b"

    dp.generate(models_root, job("flux-2-dev"))  # another model: the first one goes
    current, after = dp.resident()
    assert after == loads + 2
    assert current is not None and current.folder.model == "flux-2-dev"

    dp.unload()
    assert dp.resident()[0] is None


@pytest.mark.parametrize("model", MODELS)
def test_reference_images_condition_the_result(models_root: Path, model: str) -> None:
    plain = dp.generate(models_root, job(model)).png
    with_refs = dp.generate(
        models_root,
        job(model, references=(reference(), reference(96, 64, (20, 60, 220)))),
    )
    assert png_image(with_refs.png).size == (32, 32)
    assert with_refs.png != plain


def test_a_reference_the_pipeline_refuses_is_an_invalid_input(
    models_root: Path,
) -> None:
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(
            models_root, job("flux-2-klein-4b", references=(reference(32, 32),))
        )
    assert caught.value.kind == "invalid"
    assert "64" in caught.value.message
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(models_root, job("flux-2-dev", references=(b"not an image",)))
    assert caught.value.kind == "invalid"
    assert "reference 1" in caught.value.message


def test_defaults_come_from_the_model_and_the_folder_settings(
    models_root: Path, copy_model
) -> None:
    out = dp.generate(models_root, job("flux-2-dev", steps=None))
    assert (out.steps, out.guidance) == (28, 4.0)  # BFL's [dev] trade-off, diffusers' 4

    folder = copy_model("flux-2-klein-4b")
    settings = json.loads((folder / dw.SETTINGS_FILE).read_text())
    settings["defaults"] = {"steps": 3, "guidance": 1.0}
    (folder / dw.SETTINGS_FILE).write_text(json.dumps(settings))
    out = dp.generate(folder.parent, job("flux-2-klein-4b", steps=None))
    assert (out.steps, out.guidance) == (3, 1.0)


def test_a_dev_folder_with_a_pixtral_processor_loads_without_torchvision(
    models_root: Path, copy_model
) -> None:
    # The real FLUX.2-dev folder names a PixtralProcessor, which transformers only builds with
    # torchvision (not installable beside this torch): the pipeline falls back to the plain
    # tokenizer files of the same folder, and gives the same image.
    from transformers.utils import is_torchvision_available

    assert not is_torchvision_available()
    folder = copy_model("flux-2-dev")
    index = json.loads((folder / "model_index.json").read_text())
    index["tokenizer"] = ["transformers", "PixtralProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    from diffusers import Flux2Pipeline

    with pytest.raises(ValueError):  # what a plain from_pretrained does here
        Flux2Pipeline.from_pretrained(folder, local_files_only=True)

    fallback = dp.generate(folder.parent, job("flux-2-dev", seed=5))
    original = dp.generate(models_root, job("flux-2-dev", seed=5))
    assert fallback.png == original.png


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(missing, job("flux-2-klein-4b"))
    assert caught.value.kind == "missing_weights"
    assert str(missing) in caught.value.message
    assert "is not a folder" in caught.value.message
    assert not caught.value.retryable


def test_a_model_the_folder_does_not_hold_is_a_clear_error(models_root: Path) -> None:
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(models_root, job("flux-2-klein-9b"))
    assert caught.value.kind == "missing_weights"
    assert "no weights for flux-2-klein-9b" in caught.value.message
    assert "flux-2-dev, flux-2-klein-4b" in caught.value.message


def test_incomplete_weights_are_a_clear_error(copy_model) -> None:
    folder = copy_model("flux-2-klein-4b")
    for weights in (folder / "transformer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(folder.parent, job("flux-2-klein-4b"))
    assert caught.value.kind == "missing_weights"
    assert "missing or damaged" in caught.value.message
    assert "transformer" in caught.value.message


def test_hub_folder_names_and_a_single_model_folder_work(copy_model) -> None:
    folder = copy_model("flux-2-klein-4b", folder="FLUX.2-klein-4B")
    assert list(dw.find_models(folder.parent)) == ["flux-2-klein-4b"]
    # FLUX2_MODEL_PATH pointing at the model folder itself
    out = dp.generate(folder, job("flux-2-klein-4b"))
    assert png_image(out.png).size == (32, 32)


def test_out_of_memory_is_retryable_with_advice(
    models_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current, _ = dp.load(models_root, "flux-2-klein-4b")

    def oom(**kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(current, "pipe", oom)
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(models_root, job("flux-2-klein-4b"))
    assert caught.value.kind == "out_of_memory"
    assert caught.value.retryable
    assert "FLUX2_OFFLOAD=model" in caught.value.message


def test_an_unknown_offload_mode_is_refused(models_root: Path) -> None:
    with pytest.raises(dp.PipelineError) as caught:
        dp.generate(models_root, job("flux-2-dev"), offload="gpu-please")
    assert "FLUX2_OFFLOAD" in caught.value.message
