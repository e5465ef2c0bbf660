"""The 403 and 404 pages: inside the layout, with the reason, the role that would allow it and a way
back (handler403 / handler404 in studio/urls.py). The one-line log of a 403 is studio/log_filters.py.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from studio.models import Role

# Refusals raised before studio/permissions.py existed say the role in words; read it back.
_ROLE_IN_TEXT = re.compile(r"\b(viewer|editor|approver|admin)\b", re.IGNORECASE)


def _way_back(request: HttpRequest) -> str:
    referer = request.headers.get("referer", "")
    safe = referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    # Not back to the refused page itself (a reload keeps the referer).
    return referer if safe and not referer.endswith(request.path) else "/"


def _role_needed(exception: Exception | None) -> Role | None:
    role = getattr(exception, "role", None)
    if role is None and exception is not None:
        match = _ROLE_IN_TEXT.search(str(exception))
        role = match.group(1).lower() if match else None
    return Role(role) if role in Role.values else None


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    reason = str(exception or "") or "Your role in this workspace does not allow this."
    membership = getattr(request, "membership", None)
    context = {
        "reason": reason,
        "role_needed": _role_needed(exception),
        "your_role": membership.get_role_display() if membership else None,
        "admins": (
            membership.workspace.memberships.filter(role=Role.ADMIN)
            .select_related("user")
            .order_by("user__username")[:3]
            if membership is not None
            else []
        ),
        "back_url": _way_back(request),
    }
    return render(request, "studio/errors/403.html", context, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(
        request,
        "studio/errors/404.html",
        {"back_url": _way_back(request)},
        status=404,
    )
