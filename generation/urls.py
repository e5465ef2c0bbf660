from django.urls import path  # noqa: F401

from generation.batches.urls import urlpatterns as batch_urlpatterns
from generation.gallery.urls import urlpatterns as gallery_urlpatterns
from generation.operator.urls import urlpatterns as operator_urlpatterns

app_name = "generation"

urlpatterns: list = [
    # Variant batches, "change one thing" and spend (generation/batches/urls.py, generation/spend/views.py).
    *batch_urlpatterns,
    # The review gallery, compare and the asset page (generation/gallery/views.py, review_views.py, asset_views.py).
    *gallery_urlpatterns,
    # The operator page and provider webhooks (generation/operator/views.py).
    *operator_urlpatterns,
]
