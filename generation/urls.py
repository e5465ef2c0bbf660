from django.urls import path  # noqa: F401

from generation.batch_urls import urlpatterns as batch_urlpatterns
from generation.gallery_urls import urlpatterns as gallery_urlpatterns
from generation.operator_urls import urlpatterns as operator_urlpatterns

app_name = "generation"

urlpatterns: list = [
    # Variant batches, "change one thing" and spend (generation/batch_views.py, spend_views.py).
    *batch_urlpatterns,
    # The review gallery, compare and the asset page (generation/gallery_views.py).
    *gallery_urlpatterns,
    # The operator page and provider webhooks (generation/operator_views.py).
    *operator_urlpatterns,
]
