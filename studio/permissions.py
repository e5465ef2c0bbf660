"""What each role may do: the one table both the server's checks and the pages read.

Views refuse with `require(request, action)` (or `member_required(role)`, whose roles are the ones
below); templates offer a button only when `{% if current_membership|can:"batch.create" %}` holds
(studio/templatetags/studio_ui.py). So a page never offers what the server would then refuse: the
browser walk in tests/e2e/test_roles_walk.py holds that for the four roles.

A refusal is a `Refused` (a PermissionDenied) that carries the role that would allow it, so the
403 page can say which role that is (studio/errors.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from studio.models import Membership, Role

# action -> the least powerful role that may take it.
ACTIONS: dict[str, str] = {
    "view": Role.VIEWER,
    # Editors make things: brands, references, campaigns, templates, batches (also a remix or a
    # "Change one thing" variant, which are batches), tags, stars, comments, exports.
    "brand.create": Role.EDITOR,
    "brand.edit": Role.EDITOR,
    "reference.upload": Role.EDITOR,
    "reference.edit": Role.EDITOR,
    "campaign.create": Role.EDITOR,
    "campaign.edit": Role.EDITOR,
    "template.create": Role.EDITOR,
    "template.edit": Role.EDITOR,
    "batch.create": Role.EDITOR,
    "batch.control": Role.EDITOR,
    "asset.remix": Role.EDITOR,
    "asset.variant": Role.EDITOR,
    "asset.annotate": Role.EDITOR,
    "asset.request_changes": Role.EDITOR,
    "export.create": Role.EDITOR,
    # Approvers decide.
    "asset.approve": Role.APPROVER,
    "asset.reject": Role.APPROVER,
    # Admins run the workspace.
    "brand.delete": Role.ADMIN,
    "campaign.budget": Role.ADMIN,
    "members.manage": Role.ADMIN,
    "operator": Role.ADMIN,
    "api.manage": Role.ADMIN,
}


class Refused(PermissionDenied):
    """A 403 that knows which role would have allowed it."""

    def __init__(self, role: str, reason: str = "") -> None:
        self.role = role
        super().__init__(reason or needs(role))


def needs(role: str) -> str:
    return f"This needs the {Role(role).label.lower()} role or higher."


def role_for(action: str) -> str:
    try:
        return ACTIONS[action]
    except KeyError:
        # A typo in a template or view must not quietly offer or allow everything.
        raise ValueError(f"unknown action {action!r} (studio/permissions.py)") from None


def can(membership: Membership | None, action: str) -> bool:
    role = role_for(action)
    return membership is not None and membership.has_role(role)


def require(request: object, action: str) -> None:
    """Raise a 403 naming the role unless the current member may take `action`."""
    if not can(getattr(request, "membership", None), action):
        raise Refused(role_for(action))
