from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("brands/<uuid:code>/catalog/", views.catalog_page, name="catalog"),
    path(
        "brands/<uuid:code>/catalog/import/", views.import_create, name="import-create"
    ),
    path("brands/<uuid:code>/catalog/coverage/", views.coverage_page, name="coverage"),
    path("brands/<uuid:code>/catalog/gap-batch/", views.gap_batch, name="gap-batch"),
    path(
        "brands/<uuid:code>/catalog/export/",
        views.export_by_product,
        name="export-by-product",
    ),
    path(
        "brands/<uuid:code>/catalog/results.csv",
        views.results_download,
        name="results-csv",
    ),
    path("catalog/imports/<uuid:code>/", views.import_detail, name="import-detail"),
    path(
        "catalog/imports/<uuid:code>/confirm/",
        views.import_confirm,
        name="import-confirm",
    ),
]
