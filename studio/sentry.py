"""Optional error reporting to Sentry (SENTRY_DSN) from the web processes and the Celery workers.

Initialised once per process from StudioConfig.ready, which both gunicorn workers and Celery
workers run; sentry-sdk's Django and Celery integrations are enabled by default when those
packages are importable. Without SENTRY_DSN nothing is imported or sent.
"""

from __future__ import annotations

from django.conf import settings


def init() -> bool:
    if not settings.SENTRY_DSN:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.SENTRY_ENVIRONMENT,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        # Prompts and provider answers are customer content: never attach request bodies or PII.
        send_default_pii=False,
        max_request_body_size="never",
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
    return True
