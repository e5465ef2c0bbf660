"""The operator's provider settings: credentials and endpoints of each generation backend.

Used where a workspace has no enabled provider account of its own (generation/accounts.py's
settings_config builds a BackendConfig from them, by the names generation/backends/registry.py's
ENV_NAMES lists). Each is read from the environment variable of the same name, here and nowhere
else: the backends receive a BackendConfig and never read the environment. Keys and secrets may
also come from a file named by <NAME>_FILE (Docker/Kubernetes secrets). `<PROVIDER>_ALLOWED_HOSTS`:
comma-separated extra hosts trusted for polling and downloads besides the provider's own (a fake
server in tests, a gateway); also allowed by the egress guard (generation/backends/egress.py).
Empty means unset: the backend's own default (its public endpoint) applies.
"""

from __future__ import annotations

import os

from studio.settings_parts.env import env_secret

# Black Forest Labs: the key, and a base URL or a region ("eu", "us"); seconds to wait for an answer.
BFL_API_KEY = env_secret("BFL_API_KEY")
BFL_API_URL = os.environ.get("BFL_API_URL", "https://api.bfl.ai")
BFL_READ_TIMEOUT = os.environ.get("BFL_READ_TIMEOUT", "")
BFL_ALLOWED_HOSTS = os.environ.get("BFL_ALLOWED_HOSTS", "")

# fal.ai: the key, the queue host, and where fal publishes its webhook signing keys.
FAL_KEY = env_secret("FAL_KEY")
FAL_QUEUE_URL = os.environ.get("FAL_QUEUE_URL", "")
FAL_JWKS_URL = os.environ.get("FAL_JWKS_URL", "")
FAL_ALLOWED_HOSTS = os.environ.get("FAL_ALLOWED_HOSTS", "")

# Replicate: the API token, the base URL, and the `whsec_…` secret that signs its webhooks.
REPLICATE_API_TOKEN = env_secret("REPLICATE_API_TOKEN")
REPLICATE_API_URL = os.environ.get("REPLICATE_API_URL", "")
REPLICATE_WEBHOOK_SECRET = env_secret("REPLICATE_WEBHOOK_SECRET")
REPLICATE_ALLOWED_HOSTS = os.environ.get("REPLICATE_ALLOWED_HOSTS", "")

# Cloudflare Workers AI: the API token, the account id, the base URL.
CLOUDFLARE_API_TOKEN = env_secret("CLOUDFLARE_API_TOKEN")
CLOUDFLARE_ACCOUNT_ID = os.environ.get("CLOUDFLARE_ACCOUNT_ID", "")
CLOUDFLARE_API_URL = os.environ.get("CLOUDFLARE_API_URL", "")
CLOUDFLARE_ALLOWED_HOSTS = os.environ.get("CLOUDFLARE_ALLOWED_HOSTS", "")

# A self-hosted ComfyUI: its URL (no default), an API key if it needs one, a folder whose
# workflows replace the shipped ones, and USD per image for routing and spend reports.
COMFYUI_URL = os.environ.get("COMFYUI_URL", "")
COMFYUI_API_KEY = env_secret("COMFYUI_API_KEY")
COMFYUI_WORKFLOW_DIR = os.environ.get("COMFYUI_WORKFLOW_DIR", "")
COMFYUI_PRICE_PER_IMAGE = os.environ.get("COMFYUI_PRICE_PER_IMAGE", "")
COMFYUI_ALLOWED_HOSTS = os.environ.get("COMFYUI_ALLOWED_HOSTS", "")

# Local GPU (diffusers): the weights folder, the models GPU workers hold (for processes without
# the weights), the offload mode (auto, none, model, sequential), USD per image.
FLUX2_MODEL_PATH = os.environ.get("FLUX2_MODEL_PATH", "")
FLUX2_MODELS = os.environ.get("FLUX2_MODELS", "")
FLUX2_OFFLOAD = os.environ.get("FLUX2_OFFLOAD", "")
DIFFUSERS_PRICE_PER_IMAGE = os.environ.get("DIFFUSERS_PRICE_PER_IMAGE", "")
