from django.apps import AppConfig


class ChecksConfig(AppConfig):
    name = "checks"
    verbose_name = "Brand checks"

    def ready(self) -> None:
        from checks import hooks

        hooks.connect()
