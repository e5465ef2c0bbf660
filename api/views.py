"""Admin pages: issue and revoke API tokens, manage webhook subscriptions, read delivery logs."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from api import tokens, webhooks_out
from api.models import ApiToken, WebhookDelivery, WebhookEvent, WebhookSubscription
from studio.http import MemberRequest
from studio.models import Membership, Role
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required


def _context(request: MemberRequest, **extra: object) -> dict[str, object]:
    workspace = request.workspace
    token_list = list(ApiToken.objects.filter(workspace=workspace))
    roles = dict(
        Membership.objects.filter(
            user_id__in=[t.user_id for t in token_list], workspace=workspace
        ).values_list("user_id", "role")
    )
    for token in token_list:
        # The membership is what the server enforces (an admin may change it on Members).
        token.current_role = roles.get(token.user_id, token.role)  # type: ignore[attr-defined]
    return {
        "tokens": token_list,
        "subscriptions": WebhookSubscription.objects.filter(workspace=workspace),
        "roles": Role.choices,
        "events": WebhookEvent.choices,
        **extra,
    }


@require_GET
@member_required()
def api_settings(request: MemberRequest) -> HttpResponse:
    require(request, "api.manage")  # the rule the top bar's API link reads
    return render(request, "api/settings.html", _context(request))


@require_POST
@member_required(Role.ADMIN)
def token_create(request: MemberRequest) -> HttpResponse:
    try:
        issued = tokens.token_create(
            workspace=request.workspace,
            name=request.POST.get("name", ""),
            role=request.POST.get("role", ""),
            created_by=request.user,
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("api-ui:settings")
    # Rendered, not redirected: the secret is shown in this one answer and stored nowhere.
    return render(
        request, "api/settings.html", _context(request, new_secret=issued.secret)
    )


@require_POST
@member_required(Role.ADMIN)
def token_revoke(request: MemberRequest, code: UUID) -> HttpResponse:
    token = get_in_workspace(request, ApiToken.objects.all(), code=code)
    if tokens.token_revoke(token=token):
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api-ui:settings")


@require_POST
@member_required(Role.ADMIN)
def webhook_create(request: MemberRequest) -> HttpResponse:
    try:
        subscription = webhooks_out.subscription_create(
            workspace=request.workspace,
            url=request.POST.get("url", ""),
            events=request.POST.getlist("events"),
            description=request.POST.get("description", ""),
            created_by=request.user,
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("api-ui:settings")
    messages.success(request, "Webhook added. Its signing secret is on its page.")
    return redirect("api-ui:webhook-detail", code=subscription.code)


@require_GET
@member_required(Role.ADMIN)
def webhook_detail(request: MemberRequest, code: UUID) -> HttpResponse:
    subscription = get_in_workspace(
        request, WebhookSubscription.objects.all(), code=code
    )
    deliveries = WebhookDelivery.objects.filter(subscription=subscription)[:100]
    return render(
        request,
        "api/webhook_detail.html",
        {"subscription": subscription, "deliveries": deliveries},
    )


@require_POST
@member_required(Role.ADMIN)
def webhook_delete(request: MemberRequest, code: UUID) -> HttpResponse:
    subscription = get_in_workspace(
        request, WebhookSubscription.objects.all(), code=code
    )
    subscription.delete()
    messages.success(request, "Webhook removed.")
    return redirect("api-ui:settings")


@require_POST
@member_required(Role.ADMIN)
def delivery_redeliver(request: MemberRequest, code: UUID) -> HttpResponse:
    delivery = _delivery(request, code)
    webhooks_out.delivery_redeliver(delivery=delivery)
    messages.success(request, "Sent again.")
    return redirect("api-ui:webhook-detail", code=delivery.subscription.code)


def _delivery(request: MemberRequest, code: UUID) -> WebhookDelivery:
    from django.http import Http404

    delivery = (
        WebhookDelivery.objects.select_related("subscription")
        .filter(code=code, subscription__workspace=request.workspace)
        .first()
    )
    if delivery is None:
        raise Http404
    return delivery
