"""The operator page (workspace admins only) and the provider webhook receiver.

The operator page shows each backend's configuration, health, latency, spend and open circuit
breakers, which backend serves which model, and the workspace's provider accounts (add a key,
disable an account). Keys are write-only: the page shows whether one is present and, for a
workspace account, its last four characters, never the key itself.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from generation import accounts, losses, routing, webhooks
from generation.backends import registry
from generation.models import ProviderAccount
from generation.operator import services as operator
from generation.operator.forms import ProviderAccountForm
from studio.http import StudioRequest, wants_partial
from studio.models import Role
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required

PAGE = "generation/operator.html"


def _accounts_context(
    request: StudioRequest, form: ProviderAccountForm | None = None
) -> dict[str, Any]:
    return {
        "accounts": ProviderAccount.objects.filter(
            workspace=request.workspace
        ).order_by("-enabled", "backend", "-created_at"),
        "form": form or ProviderAccountForm(),
    }


def _losses(request: StudioRequest) -> dict[str, Any]:
    by_backend = losses.month_losses(request.workspace, since=operator.month_start())
    return {"by_backend": by_backend, "total": losses.total(by_backend)}


def _page_context(
    request: StudioRequest, form: ProviderAccountForm | None = None
) -> dict[str, Any]:
    statuses = operator.backend_statuses(request.workspace)
    return {
        "statuses": statuses,
        "total_spend": operator.total_spend(statuses),
        "open_breakers": [b for s in statuses for b in s.breakers],
        "losses": _losses(request),
        "backend_names": list(registry.BACKENDS),
        "model_rows": routing.model_table(),
        "recent_days": operator.RECENT_DAYS,
        "month_start": operator.month_start(),
        "public_url": webhooks.public_url(),
        "provider_errors": operator.recent_provider_errors(request.workspace),
        **_accounts_context(request, form),
    }


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def operator_page(request: StudioRequest) -> HttpResponse:
    require(request, "operator")  # the rule the top bar's Operator link reads
    if wants_partial(request) and request.htmx.target == "backend-status":
        # The status table refreshes itself; only it is rendered again.
        statuses = operator.backend_statuses(request.workspace)
        context = {
            "statuses": statuses,
            "total_spend": operator.total_spend(statuses),
            "open_breakers": [b for s in statuses for b in s.breakers],
            "losses": _losses(request),
            "recent_days": operator.RECENT_DAYS,
            "month_start": operator.month_start(),
        }
        return render(request, f"{PAGE}#backend_status", context)
    return render(request, PAGE, _page_context(request))


def _after_account_change(
    request: StudioRequest, form: ProviderAccountForm | None = None
) -> HttpResponse:
    if wants_partial(request):
        return render(
            request, f"{PAGE}#provider_accounts", _accounts_context(request, form)
        )
    if form is not None and form.errors:
        return render(request, PAGE, _page_context(request, form))
    return redirect("generation:operator")


@require_POST
@member_required(Role.ADMIN)
def operator_account_add(request: StudioRequest) -> HttpResponse:
    form = ProviderAccountForm(request.POST)
    if not form.is_valid():
        return _after_account_change(request, form)
    account = accounts.provider_account_add(
        workspace=request.workspace,
        backend=form.cleaned_data["backend"],
        api_key=form.cleaned_data["api_key"],
        label=form.cleaned_data["label"],
        base_url=form.cleaned_data["base_url"],
        region=form.cleaned_data["region"],
        max_concurrency=form.cleaned_data["max_concurrency"],
    )
    messages.success(
        request, f"{account.backend} account added ({account.masked_key})."
    )
    return _after_account_change(request)


@require_POST
@member_required(Role.ADMIN)
def operator_account_disable(request: StudioRequest, code: UUID) -> HttpResponse:
    account = get_in_workspace(request, ProviderAccount.objects.all(), code=code)
    if accounts.provider_account_disable(account=account):
        messages.success(
            request, f"{account.backend} account {account.masked_key} disabled."
        )
    return _after_account_change(request)


@csrf_exempt
@require_POST
def webhook(
    request: StudioRequest, backend: str, code: UUID, token: str
) -> HttpResponse:
    """A provider's callback (no login, no CSRF: the signature is the credential)."""
    receipt = webhooks.receive(
        backend_name=backend,
        code=code,
        token=token,
        headers=request.headers,
        body=request.body,
    )
    response = JsonResponse({"detail": receipt.detail}, status=receipt.status)
    if receipt.retry_after is not None:
        response["Retry-After"] = str(receipt.retry_after)
    return response
