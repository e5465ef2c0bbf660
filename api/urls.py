"""Admin pages for API tokens and webhook subscriptions (the API itself is api/main.py)."""

from django.urls import path

from api import views

app_name = "api-ui"

urlpatterns = [
    path("api-access/", views.api_settings, name="settings"),
    path("api-access/tokens/", views.token_create, name="token-create"),
    path(
        "api-access/tokens/<uuid:code>/revoke/", views.token_revoke, name="token-revoke"
    ),
    path("api-access/webhooks/", views.webhook_create, name="webhook-create"),
    path(
        "api-access/webhooks/<uuid:code>/", views.webhook_detail, name="webhook-detail"
    ),
    path(
        "api-access/webhooks/<uuid:code>/delete/",
        views.webhook_delete,
        name="webhook-delete",
    ),
    path(
        "api-access/deliveries/<uuid:code>/redeliver/",
        views.delivery_redeliver,
        name="delivery-redeliver",
    ),
]
