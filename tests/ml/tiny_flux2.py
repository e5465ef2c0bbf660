"""Tiny randomly initialised FLUX.2 pipelines, built and saved locally (nothing is downloaded).

The component configs are copied exactly from diffusers' own tests, as docs/providers.md §6.5 gives them
(tests/pipelines/flux2/test_pipeline_flux2.py and test_pipeline_flux2_klein.py). Those tests load a
tokenizer from the Hub; here it is built locally instead (the test machines have no network access
to the Hugging Face Hub):

- [klein]: a `Qwen2Tokenizer` over the byte-level alphabet with no merges, plus the Qwen chat
  tokens and a small chat template (the pipeline calls `apply_chat_template(...,
  enable_thinking=False)`).
- [dev]: a plain byte-level BPE `PreTrainedTokenizerFast` whose special tokens sit at the ids the
  Mistral3 config names (image 1, bos 2, eos 3, pad 4), with a chat template that takes the
  list-of-parts messages the pipeline sends. The real folder ships a `PixtralProcessor`, which
  needs torchvision; the pipeline only calls `apply_chat_template` on it for text prompts.

`save_model(root, model)` writes a folder laid out as FLUX2_MODEL_PATH expects
(`<root>/<studio model id>/` with model_index.json) plus the `flux-studio.json` call overrides a
tiny text encoder needs (its layer indices and a short sequence length).

Python 3.11 compatible and free of Django: it runs in .venv-ml (tests/ml) and, where torch is
installed, in the studio's own venv (tests/generation/test_backend_diffusers.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKLFlux2,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Pipeline,
    Flux2Transformer2DModel,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PreTrainedTokenizerFast,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
)

# What a tiny text encoder needs at call time: layers that exist (1 or 2 here, 30+ in the real
# models) and, as in diffusers' dummy inputs, a short sequence.
DEV_CALL = {"text_encoder_out_layers": [1], "max_sequence_length": 8}
KLEIN_CALL = {"text_encoder_out_layers": [1], "max_sequence_length": 64}

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)

MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set text = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join(' ') %}{% endif %}"
    "{% if message['role'] == 'system' %}[SYSTEM_PROMPT]{{ text }}[/SYSTEM_PROMPT]"
    "{% elif message['role'] == 'user' %}[INST]{{ text }}[/INST]"
    "{% else %}{{ text }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


def _byte_alphabet() -> list[str]:
    return sorted(pre_tokenizers.ByteLevel.alphabet())


def qwen_tokenizer() -> Qwen2Tokenizer:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: index for index, token in enumerate(_byte_alphabet() + specials)}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def mistral_tokenizer() -> PreTrainedTokenizerFast:
    # Ids 0-4 as Mistral3Config names them: image_token_index=1, bos 2, eos 3, pad 4.
    specials = ["<unk>", "[IMG]", "<s>", "</s>", "<pad>"]
    markers = ["[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    tokens = specials + markers + _byte_alphabet()
    backend = Tokenizer(
        models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[])
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=markers,
    )
    tokenizer.chat_template = MISTRAL_CHAT_TEMPLATE
    return tokenizer


def _vae() -> AutoencoderKLFlux2:
    torch.manual_seed(0)
    return AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_dev() -> Flux2Pipeline:
    """docs/providers.md §6.5, test_pipeline_flux2.py: Flux2Pipeline with a Mistral3 text encoder."""
    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
    )
    config = Mistral3Config(
        text_config={
            "model_type": "mistral",
            "vocab_size": 32000,
            "hidden_size": 16,
            "intermediate_size": 37,
            "max_position_embeddings": 512,
            "num_attention_heads": 4,
            "num_hidden_layers": 1,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000000.0,
            "sliding_window": None,
            "bos_token_id": 2,
            "eos_token_id": 3,
            "pad_token_id": 4,
        },
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "image_size": 30,
            "patch_size": 6,
            "num_channels": 3,
        },
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=4,
        model_dtype="mistral3",
        image_seq_length=4,
        vision_feature_layer=-1,
        image_token_index=1,
    )
    torch.manual_seed(0)
    text_encoder = Mistral3ForConditionalGeneration(config)
    tokenizer = mistral_tokenizer()
    vae = _vae()
    scheduler = FlowMatchEulerDiscreteScheduler()
    return Flux2Pipeline(
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
    )


def tiny_klein() -> Flux2KleinPipeline:
    """docs/providers.md §6.5, test_pipeline_flux2_klein.py: Flux2KleinPipeline with Qwen3."""
    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False,
    )
    config = Qwen3Config(
        intermediate_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(config)
    tokenizer = qwen_tokenizer()
    vae = _vae()
    scheduler = FlowMatchEulerDiscreteScheduler()
    return Flux2KleinPipeline(
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
    )


def save_model(root: Path, model: str, *, folder: str | None = None) -> Path:
    """Build the tiny pipeline for `model` and save it as `<root>/<folder or model>/`."""
    pipe = tiny_dev() if model == "flux-2-dev" else tiny_klein()
    target = Path(root) / (folder or model)
    pipe.save_pretrained(target)
    settings: dict[str, Any] = {
        "call": DEV_CALL if model == "flux-2-dev" else KLEIN_CALL
    }
    (target / "flux-studio.json").write_text(json.dumps(settings, indent=2) + "\n")
    return target
