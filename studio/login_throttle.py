"""Login throttling: django-axes counts failed logins; this module holds the studio's side of it.

Axes (settings: AXES_*) locks out a username, and separately an address, after LOGIN_FAILURE_LIMIT
failures within LOGIN_LOCKOUT_MINUTES of each other, and answers 429 with studio/login_locked.html.
Here: which address a request comes from (behind a proxy, the one the proxy saw), which members
are locked out, and the unlock a workspace admin may give one of her members.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


class ThrottledLoginBackend(AxesStandaloneBackend):
    """Axes' check for every login that comes with a request (the login page, Django admin).

    Axes refuses authenticate() calls without a request; those come from code (management
    commands, tests), not from the network, so they skip the throttle instead of failing.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the X-Forwarded-For entry our own proxy added.

    Only entries appended by the LOGIN_PROXY_COUNT trusted proxies are believed: a client can put
    anything at the left of X-Forwarded-For, so counting from the left would let it pick a fresh
    address for every try.
    """
    count = settings.LOGIN_PROXY_COUNT
    if count > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= count:
            return forwarded[-count]
    return request.META.get("REMOTE_ADDR")


def locked_usernames(usernames: Iterable[str]) -> set[str]:
    """The usernames among `usernames` that are locked out now."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    rows = (
        AccessAttempt.objects.filter(
            username__in=list(usernames), attempt_time__gte=since
        )
        .values("username")
        .annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
    )
    return {row["username"] for row in rows}


def login_unlock(*, username: str) -> int:
    """Forget the failed logins of `username` (not of any address). Returns the records removed."""
    return reset(username=username)


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The 429 page axes shows instead of checking the password (AXES_LOCKOUT_CALLABLE)."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    return render(
        request,
        "studio/login_locked.html",
        {
            "username": str(username)[:150],
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
        status=429,
    )
