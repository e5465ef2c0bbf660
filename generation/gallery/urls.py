"""The review gallery's URLs, included in generation/urls.py (namespace "generation")."""

from django.urls import path

from generation.gallery import asset_views, review_views, views

urlpatterns = [
    path("gallery/", views.workspace_gallery, name="gallery"),
    path("brands/<uuid:code>/gallery/", views.brand_gallery, name="brand-gallery"),
    path(
        "campaigns/<uuid:code>/gallery/",
        views.campaign_gallery,
        name="campaign-gallery",
    ),
    path("batches/<uuid:code>/gallery/", views.batch_gallery, name="batch-gallery"),
    path("assets/compare/", asset_views.asset_compare, name="asset-compare"),
    path("assets/bulk/", review_views.asset_bulk, name="asset-bulk"),
    # The asset page: the exact request, lineage, review trail. Batches link here too.
    path("assets/<uuid:code>/", asset_views.asset_detail, name="asset-detail"),
    path("assets/<uuid:code>/image", views.asset_image, name="asset-image"),
    path("assets/<uuid:code>/thumbnail", views.asset_thumbnail, name="asset-thumbnail"),
    path("assets/<uuid:code>/review/", review_views.asset_review, name="asset-review"),
    path("assets/<uuid:code>/star/", review_views.asset_star, name="asset-star"),
    path("assets/<uuid:code>/tags/", review_views.asset_tags, name="asset-tags"),
    path(
        "assets/<uuid:code>/comments/",
        review_views.asset_comment,
        name="asset-comment",
    ),
    path(
        "assets/<uuid:code>/focal-point/",
        review_views.asset_focal_point,
        name="asset-focal-point",
    ),
]
