from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Studio (workspaces and members)"

    def ready(self) -> None:
        from django.conf import settings

        from studio import logs, redis_policy, sentry

        logs.connect_celery()
        sentry.init()
        if settings.REDIS_EVICTION_CHECK and not settings.TESTING:
            redis_policy.warn_unless_noeviction()
