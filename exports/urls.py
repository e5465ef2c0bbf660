from django.urls import path

from exports import views

app_name = "exports"

urlpatterns = [
    path("exports/", views.pack_list, name="pack-list"),
    path("exports/new/", views.pack_new, name="pack-new"),
    path("exports/<uuid:code>/", views.pack_detail, name="pack-detail"),
    path("exports/<uuid:code>/cancel/", views.pack_cancel, name="pack-cancel"),
    path("exports/<uuid:code>/download", views.pack_download, name="pack-download"),
    path(
        "brands/<uuid:code>/export-presets/", views.brand_presets, name="brand-presets"
    ),
]
