"""Which backends exist, the studio's model vocabulary, and which settings configure each.

    backend = get_backend("bfl", config_from("bfl", lookup))

A workspace's provider account (keys encrypted at rest) builds its own BackendConfig; the fallback
is the operator's settings, named after each provider's documented variables (ENV_NAMES below;
e.g. BFL_API_KEY, BFL_API_URL: a URL or a region from bfl.REGIONS) plus `<NAME>_ALLOWED_HOSTS`:
extra hosts trusted for polling and downloads, such as a fake server's. studio/settings.py reads
each of them from the environment once; this module never does, and never imports Django: the
caller passes a `lookup` (generation/accounts.py's settings_config reads Django settings).
"""

from __future__ import annotations

from collections.abc import Callable

from generation.backends.base import Backend, BackendConfig
from generation.backends.bfl import BFLBackend
from generation.backends.cloudflare.backend import CloudflareBackend
from generation.backends.comfyui.backend import ComfyUIBackend
from generation.backends.diffusers import DiffusersBackend
from generation.backends.fal.backend import FalBackend
from generation.backends.preview.backend import PreviewBackend
from generation.backends.replicate.backend import ReplicateBackend

BACKENDS: dict[str, type[Backend]] = {
    "bfl": BFLBackend,
    "fal": FalBackend,
    "replicate": ReplicateBackend,
    "cloudflare": CloudflareBackend,
    "comfyui": ComfyUIBackend,
    "diffusers": DiffusersBackend,
    "preview": PreviewBackend,
}

# (key setting, base URL setting, extra settings) per backend, as each provider names the
# variables (studio/settings_parts/providers.py declares each one).
ENV_NAMES: dict[str, tuple[str, str, dict[str, str]]] = {
    "bfl": ("BFL_API_KEY", "BFL_API_URL", {"read_timeout": "BFL_READ_TIMEOUT"}),
    "fal": ("FAL_KEY", "FAL_QUEUE_URL", {"jwks_url": "FAL_JWKS_URL"}),
    "replicate": (
        "REPLICATE_API_TOKEN",
        "REPLICATE_API_URL",
        {"webhook_secret": "REPLICATE_WEBHOOK_SECRET"},
    ),
    "cloudflare": (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_URL",
        {"account_id": "CLOUDFLARE_ACCOUNT_ID"},
    ),
    "comfyui": (
        "COMFYUI_API_KEY",
        "COMFYUI_URL",
        {
            "workflow_dir": "COMFYUI_WORKFLOW_DIR",
            "price_per_image": "COMFYUI_PRICE_PER_IMAGE",
        },
    ),
    # No key: the weights folder is the configuration (named in both slots, so a "set ..."
    # hint names it); the backend reads base_url.
    "diffusers": (
        "FLUX2_MODEL_PATH",
        "FLUX2_MODEL_PATH",
        {
            "models": "FLUX2_MODELS",
            "price_per_image": "DIFFUSERS_PRICE_PER_IMAGE",
            "offload": "FLUX2_OFFLOAD",
        },
    ),
}

# The studio's model vocabulary (GenerationRequest.model) with display labels.
MODELS: dict[str, str] = {
    "flux-2-pro": "FLUX.2 [pro]",
    "flux-2-pro-preview": "FLUX.2 [pro] preview (latest)",
    "flux-2-max": "FLUX.2 [max]",
    "flux-2-flex": "FLUX.2 [flex]",
    "flux-2-dev": "FLUX.2 [dev]",
    "flux-2-klein-4b": "FLUX.2 [klein] 4B",
    "flux-2-klein-9b": "FLUX.2 [klein] 9B",
    "flux-2-klein-9b-preview": "FLUX.2 [klein] 9B preview (latest)",
}

# Backends that take no configuration at all.
_KEYLESS = frozenset({"preview"})
# Backends that make no HTTP calls: no extra trusted hosts to configure.
_NO_HTTP = frozenset({"diffusers"})


class UnknownBackend(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}."
        )
        self.name = name


def config_from(name: str, lookup: Callable[[str], str]) -> BackendConfig:
    """The fallback configuration of backend `name`: `lookup(setting name)` for each of its
    settings ("" when unset)."""
    if name not in BACKENDS:
        raise UnknownBackend(name)
    if name in _KEYLESS:
        return BackendConfig()
    prefix = name.upper()
    key_name, url_name, extra_names = ENV_NAMES.get(
        name, (f"{prefix}_API_KEY", f"{prefix}_API_URL", {})
    )
    extra = {
        field: value
        for field, variable in extra_names.items()
        if (value := lookup(variable))
    }
    if name not in _NO_HTTP and (allowed := lookup(f"{prefix}_ALLOWED_HOSTS")):
        extra["allowed_hosts"] = allowed
    return BackendConfig(
        api_key=lookup(key_name), base_url=lookup(url_name), extra=extra
    )


def get_backend(name: str, config: BackendConfig) -> Backend:
    """An instance of backend `name` with `config`."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise UnknownBackend(name) from None
    return cls(config)
