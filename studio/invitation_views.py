"""The page an invitation link opens: accept as the logged-in user, or with a new account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from studio.forms import InvitationSignupForm
from studio.http import StudioRequest
from studio.invitations import invitation_accept, invitation_from_token
from studio.models import Membership
from studio.tenancy import SESSION_KEY

# One answer for a bad signature, an expired link, a used one and a withdrawn one.
INVALID = (
    "This invitation link is not valid any more: it expired, was used or was withdrawn. "
    "Ask an admin of the workspace for a new one."
)


@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: StudioRequest, token: str) -> HttpResponse:
    invitation = invitation_from_token(token)
    if invitation is None:
        return _invalid(request)
    signup = InvitationSignupForm()
    if request.method == "POST":
        if request.user.is_authenticated and "join" in request.POST:
            membership = invitation_accept(invitation=invitation, user=request.user)
            return _welcome(request, membership) if membership else _invalid(request)
        if not request.user.is_authenticated and "signup" in request.POST:
            signup = InvitationSignupForm(request.POST)
            if signup.is_valid():
                with transaction.atomic():
                    user = signup.save(commit=False)
                    user.email = invitation.email
                    user.save()
                    membership = invitation_accept(invitation=invitation, user=user)
                    if membership is None:  # used by someone else meanwhile: no account
                        transaction.set_rollback(True)
                if membership is None:
                    return _invalid(request)
                login(
                    request, user, backend="django.contrib.auth.backends.ModelBackend"
                )
                return _welcome(request, membership)
    return render(
        request,
        "studio/invitation.html",
        {"invitation": invitation, "signup": signup},
    )


def _invalid(request: StudioRequest) -> HttpResponse:
    return render(request, "studio/invitation.html", {"invalid": INVALID}, status=404)


def _welcome(request: StudioRequest, membership: Membership) -> HttpResponse:
    request.session[SESSION_KEY] = membership.workspace_id
    messages.success(
        request,
        f"Welcome to {membership.workspace.name}: you are "
        f"{membership.get_role_display().lower()} here.",
    )
    return redirect("home")
