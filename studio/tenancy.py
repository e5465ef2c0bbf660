"""The current workspace of a request, and the access rules every view goes through.

The current workspace lives in the session. Every query for workspace-owned objects is filtered
by it, so an object of another workspace answers 404 (its existence is not revealed), and a
member whose role is too low gets 403 from the server whatever the page shows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from studio.http import StudioRequest
from studio.models import Membership, Role
from studio.permissions import Refused

SESSION_KEY = "studio_workspace_id"


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.workspace = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            memberships = Membership.objects.for_user(request.user)
            wanted = request.session.get(SESSION_KEY)
            membership = (
                memberships.filter(workspace_id=wanted).first() if wanted else None
            ) or memberships.first()
            if membership is not None:
                request.membership = membership  # type: ignore[attr-defined]
                request.workspace = membership.workspace  # type: ignore[attr-defined]
                if wanted != membership.workspace_id:
                    request.session[SESSION_KEY] = membership.workspace_id
        return self.get_response(request)


def workspace_context(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "current_workspace": membership.workspace,
        "current_membership": membership,
        "user_memberships": Membership.objects.for_user(request.user),
    }


def member_required(
    role: str = Role.VIEWER,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Login plus a membership of the current workspace with at least `role` (403 otherwise)."""

    def decorator(
        view: Callable[..., HttpResponseBase],
    ) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapper(
            request: StudioRequest, *args: Any, **kwargs: Any
        ) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                return redirect("no-workspace")
            if not request.membership.has_role(role):
                raise Refused(role)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def require_role(request: StudioRequest, role: str) -> None:
    """Raise 403 unless the current member has `role` or a more powerful one."""
    if request.membership is None or not request.membership.has_role(role):
        raise Refused(role)


def get_in_workspace[M: models.Model](
    request: StudioRequest, queryset: models.QuerySet[M], **lookup: Any
) -> M:
    """Fetch one object of the current workspace, or 404 (also for other workspaces' objects)."""
    if request.workspace is None:
        raise Http404
    try:
        return queryset.get(workspace=request.workspace, **lookup)
    except (ObjectDoesNotExist, ValueError) as exc:
        raise Http404 from exc
