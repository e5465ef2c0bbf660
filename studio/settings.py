"""Settings for the studio: one module, configured by environment variables only.

Every variable is documented in `.env.example`. With no environment at all the studio runs on
embedded defaults (SQLite, local media files, a filesystem Celery broker) so that `make run` works
on a fresh clone with no server to install.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from studio import logs as studio_logs

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_secret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    if value := os.environ.get(name):
        return value
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]


DEBUG = env_bool("DEBUG", False)
# Under pytest (or STUDIO_TESTING=1) a throwaway secret and fast password hashing are fine.
TESTING = env_bool("STUDIO_TESTING", False) or "pytest" in sys.modules
# Where embedded defaults keep their state (SQLite file, media, the filesystem broker).
DATA_DIR = Path(os.environ.get("STUDIO_DATA_DIR", BASE_DIR / "var"))


def dev_secret_key(folder: Path) -> str:
    """A random key kept in `folder`/secret_key, made on first use (mode 0600).

    Development and test runs without SECRET_KEY use it instead of a published constant, so the
    webhook tokens and credential encryption of one install cannot be forged from the source; the
    web server and the worker read the same file, so their signatures agree.
    """
    import secrets

    path = folder / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (see .env.example)."
        )
    SECRET_KEY = dev_secret_key(DATA_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Public base URL of this studio (for provider webhooks and links in notifications).
STUDIO_PUBLIC_URL = os.environ.get("STUDIO_PUBLIC_URL", "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "studio",
    "campaigns",
    "generation",
    "checks",
    "exports",
    "axes",  # login throttling (studio/login_throttle.py)
    "ninja",  # Django Ninja: serves the API docs' Swagger UI files from static/
    "api",
    "results",
    "catalog",
]

MIDDLEWARE = [
    # Probes (/healthz, /readyz, /metrics) answer before the HTTPS redirect and host validation.
    "studio.health.ProbeMiddleware",
    "studio.metrics.RequestMetricsMiddleware",
    "studio.logs.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body (CSRF reads POST): an oversized upload is refused unread.
    "studio.uploads.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "studio.tenancy.CurrentWorkspaceMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"
ASGI_APPLICATION = "studio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "studio.tenancy.workspace_context",
                "campaigns.context.brand_palette",
                "studio.ui_hooks.ui_hooks",
            ],
            # Every page uses the role check and the one date format: no {% load %} needed.
            "builtins": ["studio.templatetags.studio_ui"],
        },
    },
]

# Database: SQLite under DATA_DIR unless DATABASE_URL names another server (PostgreSQL in production).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'studio.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to the same file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["OPTIONS"]["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )

# A connection pool per process (psycopg_pool through Django's PostgreSQL backend), off unless
# DB_POOL_MAX_SIZE is set. The ASGI web process wants it: each concurrent request's sync code runs
# in its own thread with its own connection, so 200 simultaneous API calls (Prefer: wait) would
# otherwise open 200 PostgreSQL connections; with the pool they share DB_POOL_MAX_SIZE and queue
# for up to DB_POOL_TIMEOUT seconds. (Django requires CONN_MAX_AGE 0 with a pool.)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE > 0 and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT", 30.0),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling with django-axes (docs/security.md): LOGIN_FAILURE_LIMIT failed logins for one
# username, or from one address, lock that username or address out until LOGIN_LOCKOUT_MINUTES
# have passed without another failure. Admins unlock in Django admin (Access attempts) or, for a
# member of their workspace, on the Members page.
AUTHENTICATION_BACKENDS = [
    "studio.login_throttle.ThrottledLoginBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "studio.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "studio.login_throttle.client_address"
# No start-up banner on stderr: management commands promise one line of output (export_pack).
AXES_VERBOSE = False
# Successful logins are not logged by axes (the table would only grow); failures are what counts.
AXES_DISABLE_ACCESS_LOG = True
# No "AXES: BEGIN version …" banner in every process (management commands print one line only).
AXES_VERBOSE = False
# Proxies in front of the studio that append to X-Forwarded-For (0: the peer address is the client).
LOGIN_PROXY_COUNT = env_int(
    "LOGIN_PROXY_COUNT", 1 if env_bool("BEHIND_TLS_PROXY", False) else 0
)
# Invitations (studio/invitations.py): days an accept link works.
STUDIO_INVITATION_DAYS = env_int("STUDIO_INVITATION_DAYS", 7)
# Outgoing e-mail (invitations) through Django's mail framework (MAILERS, Django >= 6.1). In
# development the console backend prints mail to the web process's output; in production SMTP
# (`check --deploy` refuses the console there). The inviting admin also sees every link, so
# nothing depends on mail. The SMTP options apply to the SMTP backend only (other backends
# refuse options they do not know).
_mail_backend = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend"
    if not (DEBUG or TESTING)
    else "django.core.mail.backends.console.EmailBackend"
)
MAILERS = {
    "default": {
        "BACKEND": _mail_backend,
        "OPTIONS": {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": env_int("EMAIL_PORT", 25),
            "username": os.environ.get("EMAIL_HOST_USER", ""),
            "password": env_secret("EMAIL_HOST_PASSWORD"),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "use_ssl": env_bool("EMAIL_USE_SSL", False),
            "timeout": env_int("EMAIL_TIMEOUT", 10),
        }
        if _mail_backend.endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "studio@localhost")
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
# Media is never served publicly: every file goes through a view that checks the workspace.
MEDIA_URL = "/media-not-public/"

# Storage: local files by default; S3-compatible object storage when AWS_STORAGE_BUCKET_NAME is set.
if bucket := os.environ.get("AWS_STORAGE_BUCKET_NAME"):
    default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "access_key": env_secret("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("AWS_SECRET_ACCESS_KEY") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE") or None,
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
        },
    }
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Upload limits (reference images). Bigger files are refused before Pillow decodes anything.
STUDIO_UPLOAD_MAX_BYTES = env_int("STUDIO_UPLOAD_MAX_BYTES", 25 * 1024 * 1024)
STUDIO_UPLOAD_MAX_PIXELS = env_int("STUDIO_UPLOAD_MAX_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A whole request body (all files of one upload together): refused from its Content-Length before
# anything is read (studio/uploads.py). Files per request: Django answers 400 above this count.
STUDIO_REQUEST_MAX_BYTES = env_int("STUDIO_REQUEST_MAX_BYTES", 100 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("STUDIO_UPLOAD_MAX_FILES", 20)
# Each file part stops being read (nothing more written) once over STUDIO_UPLOAD_MAX_BYTES.
FILE_UPLOAD_HANDLERS = [
    "studio.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Outgoing HTTP to private addresses (generation/backends/egress.py): host names or CIDR ranges
# the operator allows even though they are private, loopback or plain http (a ComfyUI on the LAN).
# Tests talk to fake providers on 127.0.0.1.
STUDIO_PRIVATE_ENDPOINTS = env_list(
    "STUDIO_PRIVATE_ENDPOINTS", "127.0.0.0/8,::1,localhost" if TESTING else ""
)

# Redis (broker, cache, cross-worker concurrency caps). Without it: filesystem broker + local cache.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The filesystem broker has no server; "localhost" only stops kombu warning that no host was given.
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost/"
)
CELERY_QUEUE_DIR = DATA_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # A broker with no server, for the embedded default. It loses an in-flight message when a
    # whole worker is SIGKILLed (no visibility timeout); the periodic sweep re-drives such work.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        # Broadcast/control messages; kombu's default is ./control in the working directory.
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    # Redis redelivers a dead worker's unacked tasks after visibility_timeout. It must exceed the
    # longest task (seconds: our tasks never wait on a provider) but stay short so recovery is
    # bounded; kombu's Redis transport restores unacked messages every interval x throttle seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 2,
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, minus a crash that ends the worker when Redis restarts while
        # it holds unacknowledged messages (studio/broker.py; docs/engine-recovery.md).
        CELERY_BROKER_TRANSPORT = "studio.broker:Transport"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE

# Encryption of provider credentials at rest (Fernet keys, comma-separated for rotation).
# Defaults to a key derived from SECRET_KEY so dev works; set it explicitly in production.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")

# Content Security Policy (Django 6 core): no inline scripts, no third-party origins.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if default_storage["BACKEND"].endswith("S3Storage"):
    # Private media views redirect to presigned S3 URLs; the browser must be allowed to load them.
    if endpoint := os.environ.get("AWS_S3_ENDPOINT_URL"):
        SECURE_CSP["img-src"].append(endpoint.rstrip("/"))
    else:
        region = os.environ.get("AWS_S3_REGION_NAME", "")
        SECURE_CSP["img-src"] += [
            f"https://{bucket}.s3.amazonaws.com",
            *([f"https://{bucket}.s3.{region}.amazonaws.com"] if region else []),
        ]

# Production hardening; `manage.py check --deploy` is clean with DEBUG off and these defaults.
# Tests serve plain HTTP on 127.0.0.1 (live_server), so they keep the development defaults.
PRODUCTION = not (DEBUG or TESTING)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Logs: plain text, or one JSON object per line with request/task context (studio/logs.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
LOGGING = studio_logs.logging_config(LOG_FORMAT, os.environ.get("LOG_LEVEL", "INFO"))
# Errors to Sentry from web and workers when set (sentry-sdk; studio/observability.py).
SENTRY_DSN = env_secret("SENTRY_DSN")
SENTRY_ENVIRONMENT = os.environ.get("SENTRY_ENVIRONMENT", "production")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
# /metrics: with a token, only `Authorization: Bearer <token>` may read it; without, loopback only.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
# prometheus-client's multiprocess folder (read by the library itself, before any metric exists):
# set it for gunicorn and the Celery workers of one machine, emptied at each start (scripts/prod.sh).
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
# Redis must not evict the broker's messages, leases or breakers: warn at start unless the
# server's maxmemory-policy is noeviction (studio/checks.py). 0 turns the check off.
REDIS_EVICTION_CHECK = env_bool("REDIS_EVICTION_CHECK", True)

# models.W040: SQLite (the `make run` default) cannot store the non-key columns of generation.Asset's
# covering index. The index is a PostgreSQL optimisation for the gallery; on SQLite a plain index on
# the key columns is all that is needed, so the warning (printed at migrate, load_demo and runserver)
# says nothing actionable.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# Test runs: the fast hasher (passwords are irrelevant to what the tests check).
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Generation engine
# Provider credentials from the environment: the fallback when a workspace has no enabled
# provider account (generation/accounts.py). BFL_API_URL takes a URL or a region ("eu", "us").
BFL_API_KEY = env_secret("BFL_API_KEY")
BFL_API_URL = os.environ.get("BFL_API_URL", "https://api.bfl.ai")


# Active tasks each provider account may have at once, shared by every worker through Redis
# (generation/caps.py). BFL allows 24 per account; a ProviderAccount.max_concurrency overrides.
ENGINE_CONCURRENCY = {
    "default": env_int("ENGINE_CONCURRENCY_DEFAULT", 8),
    "bfl": env_int("ENGINE_CONCURRENCY_BFL", 24),
    "preview": env_int("ENGINE_CONCURRENCY_PREVIEW", 4),
    # In-process FLUX.2 on the GPU workers' own GPUs: one job per GPU, so the number of GPU
    # workers (`celery -A studio worker -Q gpu -c 1` each).
    "diffusers": env_int("ENGINE_CONCURRENCY_DIFFUSERS", 1),
}
ENGINE_REDIS_PREFIX = os.environ.get("ENGINE_REDIS_PREFIX", "engine")
# Polling (seconds): first poll after ENGINE_POLL_INITIAL without a latency hint, then each wait
# grows with the time already waited, clamped to MIN..MAX; with a hint (provider progress or the
# observed duration of recent generations) polls aim at the expected finish (AIM × estimate).
ENGINE_POLL_INITIAL = env_float("ENGINE_POLL_INITIAL", 0.5)
ENGINE_POLL_MIN = env_float("ENGINE_POLL_MIN", 0.1)
ENGINE_POLL_MAX = env_float("ENGINE_POLL_MAX", 8.0)
ENGINE_POLL_AIM = env_float("ENGINE_POLL_AIM", 0.95)
# The learned provider duration (engine.record_duration) stays within these bounds (seconds).
ENGINE_ESTIMATE_MIN = env_float("ENGINE_ESTIMATE_MIN", 0.1)
ENGINE_ESTIMATE_MAX = env_float("ENGINE_ESTIMATE_MAX", 300.0)
# Retries of network errors, timeouts and 5xx: full-jitter exponential backoff from BASE up to
# CAP seconds, at most MAX_RETRIES times, then the generation fails with the last error. 429s
# wait out Retry-After (at most RETRY_AFTER_MAX, below the broker's visibility_timeout so a waiting
# retry is not redelivered as a duplicate) and have their own budget, MAX_RATE_LIMITED.
ENGINE_RETRY_BASE = env_float("ENGINE_RETRY_BASE", 1.0)
ENGINE_RETRY_CAP = env_float("ENGINE_RETRY_CAP", 60.0)
ENGINE_MAX_RETRIES = env_int("ENGINE_MAX_RETRIES", 5)
ENGINE_MAX_RATE_LIMITED = env_int("ENGINE_MAX_RATE_LIMITED", 50)
ENGINE_RETRY_AFTER_MAX = env_float("ENGINE_RETRY_AFTER_MAX", 120.0)
_visibility = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
if _visibility is not None and _visibility <= ENGINE_RETRY_AFTER_MAX:
    # A retry waiting longer than that is delivered a second time by Redis meanwhile.
    raise ImproperlyConfigured(
        f"ENGINE_RETRY_AFTER_MAX ({ENGINE_RETRY_AFTER_MAX:g} s) must be below "
        f"CELERY_VISIBILITY_TIMEOUT ({_visibility} s): lower the first or raise the second."
    )
# Recovery after a crash. A submit or ingest claims its row for CLAIM_TTL (longer than any
# HTTP call's timeout, so a slow call is never run twice); the sweep runs every SWEEP_INTERVAL
# and re-drives a row whose next step is STUCK_AFTER overdue. STUCK_AFTER sits well above the
# normal lag between a countdown and its task starting (broker backlog: seconds), so healthy work
# is never re-driven, and far below Redis' redelivery (visibility_timeout, 300 s), so a SIGKILLed
# worker's generations resume within about STUCK_AFTER + SWEEP_INTERVAL (+ CLAIM_TTL for a step
# that was mid-call). A concurrency lease outlives that window (LEASE_TTL), so a crash never
# frees a slot the provider still counts, yet a leaked lease frees itself.
ENGINE_CLAIM_TTL = env_float("ENGINE_CLAIM_TTL", 60.0)
ENGINE_SWEEP_INTERVAL = env_float("ENGINE_SWEEP_INTERVAL", 15.0)
ENGINE_STUCK_AFTER = env_float("ENGINE_STUCK_AFTER", 30.0)
ENGINE_LEASE_TTL = env_float("ENGINE_LEASE_TTL", 180.0)
ENGINE_CAP_RECHECK = env_float("ENGINE_CAP_RECHECK", 2.0)
# A worker that starts sweeps every this many seconds, re-driving work this overdue, until its
# dead predecessor's polls are due and claims released, instead of waiting for STUCK_AFTER: a
# restarted worker resumes its predecessor's generations in seconds (docs/engine-recovery.md).
ENGINE_STARTUP_STUCK_AFTER = env_float("ENGINE_STARTUP_STUCK_AFTER", 1.0)
# A process holding a submit/ingest claim keeps a liveness key with this TTL (s) in Redis; once
# it lapses the holder counts as dead and the sweep releases its claims (generation/claims.py).
ENGINE_HOLDER_ALIVE_TTL = env_float("ENGINE_HOLDER_ALIVE_TTL", 6.0)
# Deadlines: at the provider (then `expired`), and waiting in the queue.
ENGINE_PROVIDER_DEADLINE = env_float("ENGINE_PROVIDER_DEADLINE", 900.0)
ENGINE_QUEUE_DEADLINE = env_float("ENGINE_QUEUE_DEADLINE", 86400.0)
ENGINE_THUMBNAIL_SIZE = env_int("ENGINE_THUMBNAIL_SIZE", 512)
ENGINE_MAX_RESULT_PIXELS = env_int("ENGINE_MAX_RESULT_PIXELS", 64_000_000)
# Circuit breakers, one per backend + credentials (generation/breaker.py): open after THRESHOLD
# failures within WINDOW seconds, one probe after COOLDOWN (its lease PROBE_TTL), closed by a
# finished image; generations held by an open breaker re-check every RECHECK seconds.
ENGINE_BREAKER_THRESHOLD = env_int("ENGINE_BREAKER_THRESHOLD", 5)
ENGINE_BREAKER_WINDOW = env_float("ENGINE_BREAKER_WINDOW", 60.0)
ENGINE_BREAKER_COOLDOWN = env_float("ENGINE_BREAKER_COOLDOWN", 30.0)
ENGINE_BREAKER_PROBE_TTL = env_float("ENGINE_BREAKER_PROBE_TTL", 60.0)
ENGINE_BREAKER_RECHECK = env_float("ENGINE_BREAKER_RECHECK", 5.0)
# With a webhook expected (STUDIO_PUBLIC_URL set), the first poll waits at most this long.
ENGINE_WEBHOOK_POLL_DELAY = env_float("ENGINE_WEBHOOK_POLL_DELAY", 30.0)
# Routing's "fastest": median of the last SAMPLE succeeded generations, cached TTL seconds.
ROUTING_SPEED_SAMPLE = env_int("ROUTING_SPEED_SAMPLE", 20)
ROUTING_SPEED_TTL = env_int("ROUTING_SPEED_TTL", 60)

# Queues by kind of work: "dispatch" (submit/poll: short I/O, many in flight), "ingest"
# (download, Pillow, storage: CPU), "gpu" (the diffusers backend's submits, which run the
# pipeline in-process: generation.tasks.route_by_backend); later "export".
# Workers (README, deploy/systemd): the I/O worker -Q dispatch -P threads -c 32 (waiting on a
# provider holds a thread, not a process), the CPU worker -Q celery,ingest,export -P prefork; on each GPU
# machine also -Q gpu -c 1 (one per GPU).
CELERY_TASK_ROUTES = (
    "generation.tasks.route_by_backend",
    {
        "generation.tasks.generation_ingest": {"queue": "ingest"},
        # Brand checks are CPU work too; they run after the asset is stored, never before.
        "checks.tasks.*": {"queue": "ingest"},
        "exports.tasks.export_pack_build_task": {"queue": "export"},
        # Import checks and cleans images (CPU); URL fetches are short I/O next to ingest.
        "catalog.tasks.*": {"queue": "ingest"},
        "generation.tasks.*": {"queue": "dispatch"},
    },
)
CELERY_BEAT_SCHEDULE = {
    "generation-sweep": {
        "task": "generation.tasks.generation_sweep",
        "schedule": ENGINE_SWEEP_INTERVAL,
        # A sweep not started by the next one is pointless: do not let them pile up.
        "options": {"expires": ENGINE_SWEEP_INTERVAL},
    },
    "export-packs-sweep": {
        "task": "exports.tasks.export_packs_sweep_task",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
}
# Celery's Django fixup closes the database connection before and after every task unless this is
# set: a new PostgreSQL connection per task (~5 ms and a server process fork) would cost more than
# most of our tasks. With it, a worker process keeps its connection for up to this many tasks
# (generation/tasks.py drops a connection that broke meanwhile).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 200)

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
