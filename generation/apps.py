from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation (backends, generations, assets)"

    def ready(self) -> None:
        # Receivers for campaigns.signals: the campaign and template pages' review data.
        from generation import receivers  # noqa: F401
        from generation.metrics import EngineCollector
        from studio.metrics import register_state_collector

        register_state_collector(EngineCollector())
