from django.apps import AppConfig


class ResultsConfig(AppConfig):
    name = "results"
    verbose_name = "A/B results (ad platform performance per asset)"
