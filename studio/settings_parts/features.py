"""Settings of the feature apps: brand checks, prompts and batches, asset packs and share links,
template hooks, the JSON API and A/B results."""

from __future__ import annotations

import os

from studio.settings_parts.env import env_bool, env_float, env_int, env_list

# Brand checks (checks/, docs/brand-checks.md): run after every ingest; default thresholds (0..1)
# under which a score flags an asset for review, and the CIEDE2000 colour tolerance. A brand's own
# thresholds (admin: Brand check thresholds) replace these.
CHECKS_ENABLED = env_bool("CHECKS_ENABLED", True)
CHECKS_PALETTE_MIN = env_float("CHECKS_PALETTE_MIN", 0.6)
CHECKS_TEXT_MIN = env_float("CHECKS_TEXT_MIN", 0.9)
CHECKS_LOGO_MIN = env_float("CHECKS_LOGO_MIN", 0.5)
CHECKS_PRODUCT_MIN = env_float("CHECKS_PRODUCT_MIN", 0.5)
CHECKS_DELTA_E = env_float("CHECKS_DELTA_E", 10.0)
# Folder holding Tesseract's eng.traineddata for the OCR check; empty: Debian's and other usual places.
CHECKS_TESSDATA = os.environ.get("CHECKS_TESSDATA", "")

# The longest rendered prompt the studio sends, in characters (a provider's documented limit wins
# when lower: generation/prompt_limits.py). Previews refuse longer ones with the numbers.
STUDIO_PROMPT_MAX_CHARS = env_int("STUDIO_PROMPT_MAX_CHARS", 20_000)

# Variant batches: the most generations one batch may make (the builder refuses bigger ones).
STUDIO_BATCH_MAX_SIZE = env_int("STUDIO_BATCH_MAX_SIZE", 1000)

# Asset packs (exports/): how far a rendition may be upscaled before it is flagged "too small"
# (and exported at that scale, smaller than the preset); hours a finished pack is kept (0: for
# ever); the build task's time limit in seconds (a big pack takes minutes).
EXPORT_MAX_UPSCALE = env_float("EXPORT_MAX_UPSCALE", 1.25)
EXPORT_PACK_TTL_HOURS = env_int("EXPORT_PACK_TTL_HOURS", 168)
EXPORT_TASK_TIME_LIMIT = env_int("EXPORT_TASK_TIME_LIMIT", 3600)
# C2PA signing of renditions (exports/c2pa_sign.py): a PEM certificate chain (signing certificate
# first) and its PKCS#8 PEM key; both set turns signing on. ES256 or PS256 etc. (EXPORT_C2PA_ALG).
EXPORT_C2PA_CERT = os.environ.get("EXPORT_C2PA_CERT", "")
EXPORT_C2PA_KEY = os.environ.get("EXPORT_C2PA_KEY", "")
EXPORT_C2PA_ALG = os.environ.get("EXPORT_C2PA_ALG", "es256")
EXPORT_C2PA_TSA_URL = os.environ.get("EXPORT_C2PA_TSA_URL", "")
# Images rendered at once while a pack builds (threads: Pillow releases the GIL while decoding,
# resizing and encoding, and Celery's prefork children may not start processes of their own).
EXPORT_BUILD_THREADS = env_int("EXPORT_BUILD_THREADS", 2)
# Outside review links (exports/sharing.py): default lifetime, and requests per address and
# link per minute on the public pages.
SHARE_LINK_DAYS = env_int("SHARE_LINK_DAYS", 14)
SHARE_RATE_LIMIT = env_int("SHARE_RATE_LIMIT", 120)

# Templates of feature apps that lower layers include without importing them (studio/ui_hooks.py):
# the gallery's bulk bar, a campaign's and a batch's action buttons.
STUDIO_UI_HOOKS = {
    "gallery_bulk_actions": ["exports/hooks/gallery_bulk.html"],
    "campaign_actions": [
        "exports/hooks/campaign_actions.html",
        "results/hooks/campaign_actions.html",
    ],
    "batch_actions": ["exports/hooks/batch_actions.html"],
    "brand_actions": [
        "exports/hooks/brand_actions.html",
        "catalog/hooks/brand_actions.html",
    ],
    "main_nav": ["exports/hooks/main_nav.html"],
    # The home page's "what needs the team" panels.
    "home_panels": ["generation/hooks/home_dashboard.html"],
    # Cards in a campaign page's sidebar.
    "campaign_sidebar": ["results/hooks/campaign_sidebar.html"],
    # Extra columns of a template's version list (a <th> with part="head", a <td> per version).
    "template_version_columns": ["results/hooks/template_version_columns.html"],
}
# JSON API (api/, docs/api.md).
API_RATE_LIMIT = env_int(
    "API_RATE_LIMIT", 600
)  # requests per token per window (0: off)
API_RATE_WINDOW = env_int("API_RATE_WINDOW", 60)  # seconds
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024)  # JSON bodies
API_IDEMPOTENCY_TTL = env_int("API_IDEMPOTENCY_TTL", 24 * 3600)
API_WAIT_MAX = env_int("API_WAIT_MAX", 60)  # the most `Prefer: wait=N` may ask for
API_WAIT_RECHECK = env_float("API_WAIT_RECHECK", 5.0)  # re-read a waited row this often
API_FILE_URL_TTL = env_int("API_FILE_URL_TTL", 3600)  # signed download URLs
# Hosts webhooks may reach although private (an internal receiver); they may use plain http.
API_WEBHOOK_ALLOWED_HOSTS = env_list("API_WEBHOOK_ALLOWED_HOSTS")
API_WEBHOOK_RETRY_SCHEDULE = [
    int(s)
    for s in env_list("API_WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000")
]
API_WEBHOOK_TIMEOUT = env_float("API_WEBHOOK_TIMEOUT", 10.0)
# A/B results (results/): a winner is named only when every variant of a batch has this many
# impressions and one has at least this probability of the best CTR.
RESULTS_MIN_IMPRESSIONS = env_int("RESULTS_MIN_IMPRESSIONS", 1000)
RESULTS_WIN_PROBABILITY = env_float("RESULTS_WIN_PROBABILITY", 0.95)
