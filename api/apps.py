from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "JSON API, tokens and webhooks out"

    def ready(self) -> None:
        # Receivers for generation.signals: waiters and webhooks out.
        from api import receivers  # noqa: F401
