"""Request typing and the one rule for choosing a full page or an htmx partial."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails

    from studio.models import Membership, Workspace


class StudioRequest(HttpRequest):
    user: User
    htmx: HtmxDetails
    workspace: Workspace | None
    membership: Membership | None


class MemberRequest(StudioRequest):
    """A request past `member_required` (studio/tenancy.py): the user is signed in and a member of
    the current workspace, so neither is None. Views behind that decorator take this type."""

    workspace: Workspace
    membership: Membership


def wants_partial(request: HttpRequest) -> bool:
    """True for htmx requests that expect a fragment.

    Boosted requests and history-restore requests (htmx 2 re-requests a pushed URL with
    HX-Request set when its history cache misses) must get the full page.
    """
    htmx = getattr(request, "htmx", None)
    if not htmx:
        return False
    return not htmx.boosted and not htmx.history_restore_request
