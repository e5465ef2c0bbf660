"""Settings for the studio, configured by environment variables only.

Every variable is documented in `.env.example`. With no environment at all the studio runs on
embedded defaults (SQLite, local media files, a filesystem Celery broker) so that `make run` works
on a fresh clone with no server to install. Cohesive groups (providers, the engine, the feature
apps) live in studio/settings_parts/ and are imported below; DJANGO_SETTINGS_MODULE stays
studio.settings.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from studio import logs as studio_logs
from studio.settings_parts.env import (
    dev_secret_key,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", False)
# STUDIO_TESTING=1 (the test suite sets it: tests/settings.py): a throwaway secret, fast password
# hashing, console mail, fakes on 127.0.0.1, and none of the production security defaults below.
TESTING = env_bool("STUDIO_TESTING", False)
# Where embedded defaults keep their state (SQLite file, media, the filesystem broker).
DATA_DIR = Path(os.environ.get("STUDIO_DATA_DIR", BASE_DIR / "var"))


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
# Where `make run` serves the studio on this machine (scripts/run.sh reads the same STUDIO_HOST and
# PORT): what load_demo prints when no public URL is set.
STUDIO_LOCAL_URL = f"http://{os.environ.get('STUDIO_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

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
default_storage: dict[str, Any]
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
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any]
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
SECURE_CSP: dict[str, list[str]] = {
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

# Groups of their own (studio/settings_parts/): the generation providers' credentials and
# endpoints; the engine with the Celery queues and schedule that carry its work; the feature apps
# (brand checks, batches, asset packs, template hooks, the JSON API, A/B results).
from studio.settings_parts.engine import *  # noqa: E402, F403
from studio.settings_parts.engine import ENGINE_RETRY_AFTER_MAX  # noqa: E402
from studio.settings_parts.features import *  # noqa: E402, F403
from studio.settings_parts.providers import *  # noqa: E402, F403

_visibility = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
if _visibility is not None and _visibility <= ENGINE_RETRY_AFTER_MAX:
    # A retry waiting longer than that is delivered a second time by Redis meanwhile.
    raise ImproperlyConfigured(
        f"ENGINE_RETRY_AFTER_MAX ({ENGINE_RETRY_AFTER_MAX:g} s) must be below "
        f"CELERY_VISIBILITY_TIMEOUT ({_visibility} s): lower the first or raise the second."
    )
