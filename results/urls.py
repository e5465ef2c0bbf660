from django.urls import path

from results import views

app_name = "results"

urlpatterns = [
    path(
        "campaigns/<uuid:code>/results/",
        views.campaign_results,
        name="campaign-results",
    ),
    path(
        "campaigns/<uuid:code>/results/upload/",
        views.results_upload,
        name="results-upload",
    ),
    path(
        "campaigns/<uuid:code>/results/confirm/",
        views.results_confirm,
        name="results-confirm",
    ),
]
