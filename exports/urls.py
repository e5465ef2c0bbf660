from django.urls import path

from exports import share_views, views

app_name = "exports"

urlpatterns = [
    path("exports/", views.pack_list, name="pack-list"),
    path("exports/new/", views.pack_new, name="pack-new"),
    path("exports/<uuid:code>/", views.pack_detail, name="pack-detail"),
    path("exports/<uuid:code>/cancel/", views.pack_cancel, name="pack-cancel"),
    path("exports/<uuid:code>/download", views.pack_download, name="pack-download"),
    path("exports/shares/", share_views.share_list, name="share-list"),
    path("exports/shares/new/", share_views.share_create, name="share-create"),
    path(
        "exports/shares/<uuid:code>/revoke/",
        share_views.share_revoke,
        name="share-revoke",
    ),
    # Public outside review pages (no account; the token is the key).
    path("share/<str:token>/", share_views.share_page, name="share-page"),
    path("share/<str:token>/name", share_views.share_name, name="share-name"),
    path(
        "share/<str:token>/manifest.json",
        share_views.share_manifest,
        name="share-manifest",
    ),
    path(
        "share/<str:token>/<uuid:code>/image",
        share_views.share_image,
        name="share-image",
    ),
    path(
        "share/<str:token>/<uuid:code>/decide",
        share_views.share_decide,
        name="share-decide",
    ),
    path(
        "brands/<uuid:code>/export-presets/", views.brand_presets, name="brand-presets"
    ),
]
