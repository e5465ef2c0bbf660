from django.apps import AppConfig


class CatalogConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "catalog"
    verbose_name = "Product catalog"

    def ready(self) -> None:
        from catalog import receivers  # noqa: F401  (connects the signal receivers)
