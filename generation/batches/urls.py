"""Batches, "change one thing" and spend; included in generation/urls.py (namespace "generation")."""

from django.urls import path

from generation.batches import builder_views, variant_views
from generation.batches import views as batch_views
from generation.spend import views as spend_views

urlpatterns = [
    path("batches/", batch_views.batch_list, name="batch-list"),
    # GET: the builder (?template=, ?campaign=, ?from=<batch or generation>); POST: dispatch.
    path("batches/new/", builder_views.batch_create, name="batch-create"),
    path("batches/new/preview/", builder_views.batch_preview, name="batch-preview"),
    path("batches/<uuid:code>/", batch_views.batch_detail, name="batch-detail"),
    path(
        "batches/<uuid:code>/progress/",
        batch_views.batch_progress,
        name="batch-progress",
    ),
    path(
        "batches/<uuid:code>/dispatch/",
        batch_views.batch_dispatch,
        name="batch-dispatch",
    ),
    path("batches/<uuid:code>/cancel/", batch_views.batch_cancel, name="batch-cancel"),
    path("batches/<uuid:code>/retry/", batch_views.batch_retry, name="batch-retry"),
    path("batches/<uuid:code>/rerun/", batch_views.batch_rerun, name="batch-rerun"),
    path(
        "assets/<uuid:code>/variant/",
        variant_views.asset_variant,
        name="asset-variant",
    ),
    path("spend/", spend_views.workspace_spend, name="spend"),
    path(
        "campaigns/<uuid:code>/spend/",
        spend_views.campaign_spend,
        name="campaign-spend",
    ),
]
