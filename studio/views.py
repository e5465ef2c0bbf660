"""Home, workspace switching and membership management."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage
from studio import services
from studio.forms import MemberAddForm, MemberRoleForm
from studio.http import StudioRequest
from studio.models import Membership, Role
from studio.tenancy import SESSION_KEY, member_required


@require_GET
@member_required()
def home(request: StudioRequest) -> HttpResponse:
    workspace = request.workspace
    brands = Brand.objects.filter(workspace=workspace)
    context = {
        "first_brand": brands.first(),
        "first_campaign": Campaign.objects.filter(workspace=workspace).first(),
        "brands": Brand.objects.filter(workspace=workspace).all()[:12],
        "campaigns": Campaign.objects.filter(workspace=workspace).select_related(
            "brand"
        )[:8],
        "templates": PromptTemplate.objects.filter(workspace=workspace).select_related(
            "brand"
        )[:8],
        "reference_count": ReferenceImage.objects.filter(workspace=workspace).count(),
    }
    return render(request, "studio/home.html", context)


@require_POST
@login_required
def workspace_switch(request: StudioRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.for_user(request.user),
        workspace__code=request.POST.get("workspace"),
    )
    request.session[SESSION_KEY] = membership.workspace_id
    messages.info(request, f"Switched to {membership.workspace.name}.")
    return redirect("home")


@login_required
def no_workspace(request: StudioRequest) -> HttpResponse:
    if request.membership is not None:
        return redirect("home")
    return render(request, "studio/no_workspace.html")


@member_required()
def members(request: StudioRequest) -> HttpResponse:
    assert request.workspace is not None and request.membership is not None
    form = MemberAddForm()
    if request.method == "POST":
        if not request.membership.is_admin:
            return HttpResponse("Only admins can add members.", status=403)
        form = MemberAddForm(request.POST)
        if form.is_valid():
            services.membership_add(
                workspace=request.workspace,
                user=form.cleaned_data["user"],
                role=form.cleaned_data["role"],
            )
            messages.success(request, f"{form.cleaned_data['user'].username} added.")
            return redirect("members")
    memberships = (
        Membership.objects.filter(workspace=request.workspace)
        .select_related("user")
        .order_by("user__username")
    )
    return render(
        request,
        "studio/members.html",
        {
            "memberships": memberships,
            "form": form,
            "roles": Role.choices,
            "can_manage": request.membership.is_admin,
        },
    )


@require_POST
@member_required(Role.ADMIN)
def member_update(request: StudioRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership, pk=membership_id, workspace=request.workspace
    )
    form = MemberRoleForm(request.POST)
    if "remove" in request.POST:
        error = services.membership_remove(membership=membership)
    elif form.is_valid():
        error = services.membership_set_role(
            membership=membership, role=form.cleaned_data["role"]
        )
    else:
        error = "Choose a valid role."
    if error:
        messages.error(request, error)
    return redirect("members")
