"""Workspace switching and membership management (the home page is campaigns/views/home.py)."""

from __future__ import annotations

import uuid
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from studio import services
from studio.forms import InvitationForm, MemberRoleForm
from studio.http import StudioRequest
from studio.invitations import (
    invitation_create,
    invitation_revoke,
    invitation_send,
    invitation_token,
)
from studio.login_throttle import locked_usernames, login_unlock
from studio.models import Invitation, Membership, Role
from studio.tenancy import SESSION_KEY, get_in_workspace, member_required


@require_POST
@login_required
def workspace_switch(request: StudioRequest) -> HttpResponse:
    try:
        code = uuid.UUID(str(request.POST.get("workspace", "")))
    except ValueError:
        # A malformed code is a bad request, not a server error (the UUID column would raise).
        return HttpResponseBadRequest("Choose a workspace from the list.")
    membership = get_object_or_404(
        Membership.objects.for_user(request.user), workspace__code=code
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
    form = InvitationForm()
    if request.method == "POST":
        if not request.membership.is_admin:
            return HttpResponse("Only admins can invite members.", status=403)
        form = InvitationForm(request.POST)
        if form.is_valid():
            invitation = invitation_create(
                workspace=request.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
            path = reverse("invitation-accept", args=[invitation_token(invitation)])
            link = (
                settings.STUDIO_PUBLIC_URL + path
                if settings.STUDIO_PUBLIC_URL
                else request.build_absolute_uri(path)
            )
            invitation_send(invitation=invitation, link=link)
            # The same answer whether or not the address has an account; the link is shown so
            # the invitation works without e-mail.
            messages.success(
                request,
                f"Invitation sent to {invitation.email}. If it does not arrive, give them "
                f"this link (it works once, for {settings.STUDIO_INVITATION_DAYS} days): {link}",
            )
            return redirect("members")
    memberships = list(
        Membership.objects.filter(workspace=request.workspace)
        .select_related("user")
        .order_by("user__username")
    )
    can_manage = request.membership.is_admin
    locked = (
        locked_usernames(m.user.username for m in memberships) if can_manage else set()
    )
    return render(
        request,
        "studio/members.html",
        {
            "memberships": memberships,
            "locked": locked,
            "invitations": Invitation.objects.pending()
            .filter(workspace=request.workspace)
            .select_related("invited_by")
            if can_manage
            else [],
            "form": form,
            "roles": Role.choices,
            "can_manage": can_manage,
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


@require_POST
@member_required(Role.ADMIN)
def member_unlock(request: StudioRequest, membership_id: int) -> HttpResponse:
    """Lift a member's login lockout (their username's failed logins are forgotten)."""
    membership = get_object_or_404(
        Membership.objects.select_related("user"),
        pk=membership_id,
        workspace=request.workspace,
    )
    login_unlock(username=membership.user.username)
    messages.success(request, f"{membership.user.username} can log in again.")
    return redirect("members")


@require_POST
@member_required(Role.ADMIN)
def invitation_revoke_view(request: StudioRequest, code: UUID) -> HttpResponse:
    invitation = get_in_workspace(request, Invitation.objects.pending(), code=code)
    invitation_revoke(invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} withdrawn.")
    return redirect("members")
