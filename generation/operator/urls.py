"""The operator page and provider webhooks, included in generation/urls.py ("generation")."""

from django.urls import path

from generation.operator import views as views

urlpatterns = [
    path("operator/", views.operator_page, name="operator"),
    path("operator/accounts/", views.operator_account_add, name="operator-account-add"),
    path(
        "operator/accounts/<uuid:code>/disable/",
        views.operator_account_disable,
        name="operator-account-disable",
    ),
    # Public by design: no login; a per-generation token and the provider's signature.
    path(
        "webhooks/<str:backend>/<uuid:code>/<str:token>/",
        views.webhook,
        name="webhook",
    ),
]
