from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation (backends, generations, assets)"

    def ready(self) -> None:
        from generation.metrics import EngineCollector
        from studio.metrics import register_state_collector

        register_state_collector(EngineCollector())
