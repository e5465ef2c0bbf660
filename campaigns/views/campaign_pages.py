"""Campaigns: list, create (under a brand, or from the list with a brand picked), view, edit, change status."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from campaigns import services, signals
from campaigns.forms import CampaignCreateForm, CampaignForm, CampaignStatusForm
from campaigns.models import Brand, Campaign, PromptTemplate
from studio.http import StudioRequest, wants_partial
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required


def _campaign_for_user(request: StudioRequest, code: UUID) -> Campaign:
    return get_in_workspace(
        request, Campaign.objects.select_related("brand"), code=code
    )


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def campaign_list(request: StudioRequest) -> HttpResponse:
    campaigns = Campaign.objects.filter(workspace=request.workspace).select_related(
        "brand"
    )
    status = request.GET.get("status", "")
    brand_code = request.GET.get("brand", "")
    if status in Campaign.Status.values:
        campaigns = campaigns.filter(status=status)
    if brand_code:
        campaigns = (
            campaigns.filter(brand__code__iexact=brand_code)
            if _is_uuid(brand_code)
            else campaigns.none()
        )
    context = {
        "campaigns": campaigns,
        "brands": Brand.objects.filter(workspace=request.workspace),
        "statuses": Campaign.Status.choices,
        "status": status,
        "brand_code": brand_code,
    }
    template = (
        "campaigns/campaigns/list.html#campaign_table"
        if wants_partial(request)
        else "campaigns/campaigns/list.html"
    )
    return render(request, template, context)


def _say_budget_ignored(
    request: StudioRequest, form: CampaignForm, campaign: Campaign
) -> None:
    # The budget field is disabled for non-admins, so a posted value is dropped: say so.
    if form.budget_change_ignored:
        cap = (
            f"${campaign.budget_cap}"
            if campaign.budget_cap is not None
            else "no budget cap"
        )
        messages.warning(
            request,
            f"The budget was not changed: only admins set it. It stays at {cap}.",
        )


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


@require_http_methods(["GET", "POST"])
@member_required()
def campaign_create(request: StudioRequest, code: UUID) -> HttpResponse:
    """A new campaign under the brand the path names (from the brand's page)."""
    require(request, "campaign.create")
    brand = get_in_workspace(request, Brand.objects.all(), code=code)
    assert request.membership is not None
    form = CampaignForm(
        request.POST or None,
        can_set_budget=request.membership.is_admin,
        initial={"channels": brand.default_formats},
    )
    if request.method == "POST" and form.is_valid():
        return _create(request, form, brand)
    return render(
        request,
        "campaigns/campaigns/form.html",
        {"form": form, "brand": brand, "campaign": None},
    )


@require_http_methods(["GET", "POST"])
@member_required()
def campaign_create_with_brand_choice(request: StudioRequest) -> HttpResponse:
    """A new campaign from the campaigns list: the form picks one of this workspace's brands."""
    require(request, "campaign.create")
    assert request.workspace is not None and request.membership is not None
    brands = list(Brand.objects.filter(workspace=request.workspace)[:2])
    # With a single brand there is nothing to choose: it is preselected.
    only = brands[0] if len(brands) == 1 else None
    form = CampaignCreateForm(
        request.POST or None,
        workspace=request.workspace,
        can_set_budget=request.membership.is_admin,
        initial={"brand": only, "channels": only.default_formats if only else []},
    )
    if request.method == "POST" and form.is_valid():
        return _create(request, form, form.cleaned_data["brand"])
    return render(
        request,
        "campaigns/campaigns/form.html",
        {"form": form, "brand": None, "campaign": None, "has_brands": bool(brands)},
    )


def _create(request: StudioRequest, form: CampaignForm, brand: Brand) -> HttpResponse:
    fields = {k: v for k, v in form.cleaned_data.items() if k != "brand"}
    campaign = services.campaign_create(brand=brand, user=request.user, fields=fields)
    messages.success(request, f"Campaign “{campaign.name}” created.")
    _say_budget_ignored(request, form, campaign)
    return redirect("campaigns:campaign-detail", campaign.code)


@require_GET
@member_required()
def campaign_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    campaign = _campaign_for_user(request, code)
    context = {
        "campaign": campaign,
        "status_form": CampaignStatusForm(initial={"status": campaign.status}),
        "templates": PromptTemplate.objects.filter(campaign=campaign),
        # Approval progress ("review_counts"), added by generation through a signal.
        **signals.page_data(signals.campaign_page, campaign=campaign),
    }
    return render(request, "campaigns/campaigns/detail.html", context)


@require_http_methods(["GET", "POST"])
@member_required()
def campaign_edit(request: StudioRequest, code: UUID) -> HttpResponse:
    require(request, "campaign.edit")  # the rule the campaign page's Edit button reads
    campaign = _campaign_for_user(request, code)
    assert request.membership is not None
    form = CampaignForm(
        request.POST or None,
        instance=campaign,
        can_set_budget=request.membership.is_admin,
    )
    if request.method == "POST" and form.is_valid():
        # Plain CRUD on one row with no side effects: ModelForm.save() is the house rule's exception.
        campaign = form.save()
        messages.success(request, "Campaign saved.")
        _say_budget_ignored(request, form, campaign)
        return redirect("campaigns:campaign-detail", campaign.code)
    return render(
        request,
        "campaigns/campaigns/form.html",
        {"form": form, "brand": campaign.brand, "campaign": campaign},
    )


@require_POST
@member_required()
@vary_on_headers("HX-Request")
def campaign_status(request: StudioRequest, code: UUID) -> HttpResponse:
    require(
        request, "campaign.edit"
    )  # the rule the status form reads (in the page and this fragment)
    campaign = _campaign_for_user(request, code)
    form = CampaignStatusForm(request.POST)
    error = ""
    if form.is_valid():
        campaign = services.campaign_set_status(
            campaign=campaign, status=form.cleaned_data["status"]
        )
    else:
        # An unknown status changes nothing, and the answer says so instead of "Status: Draft."
        error = (
            f"Status not changed: “{request.POST.get('status', '')[:40]}” is not a "
            f"campaign status. It is still {campaign.get_status_display()}."
        )
    if wants_partial(request):
        context = {
            "campaign": campaign,
            "status_form": CampaignStatusForm(initial={"status": campaign.status}),
            "status_error": error,
        }
        return render(
            request, "campaigns/campaigns/detail.html#campaign_status", context
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Status: {campaign.get_status_display()}.")
    return redirect("campaigns:campaign-detail", campaign.code)
