from django.urls import path  # noqa: F401

from generation.operator_urls import urlpatterns as operator_urlpatterns

app_name = "generation"

urlpatterns: list = [
    # The operator page and provider webhooks (generation/operator_views.py).
    *operator_urlpatterns,
]
