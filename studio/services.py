"""State changes for workspaces and memberships."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.text import slugify

from studio.models import Membership, Role, Workspace


def workspace_create(*, name: str, owner: User) -> Workspace:
    """Create a workspace with `owner` as its first admin."""
    base = slugify(name)[:50] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, slug=slug)
        Membership.objects.create(workspace=workspace, user=owner, role=Role.ADMIN)
    return workspace


LAST_ADMIN = "A workspace needs at least one admin."


class MembershipRuleError(Exception):
    """A membership change refused because it would leave the workspace without an admin."""


def membership_change(
    *, workspace: Workspace, user: User, role: str | None
) -> Membership | None:
    """The one way to add a member, change a role or (role None) remove a member.

    Every path goes through here (members page, invitations, Django admin, load_demo), so the
    rule holds everywhere: the workspace keeps at least one admin, else MembershipRuleError. The
    workspace row is locked first, so two admins demoting each other at once are serialised and
    the second is refused.
    """
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
        current = Membership.objects.filter(workspace=workspace, user=user).first()
        if (
            current is not None
            and current.role == Role.ADMIN
            and role != Role.ADMIN
            and not Membership.objects.filter(workspace=workspace, role=Role.ADMIN)
            .exclude(pk=current.pk)
            .exists()
        ):
            raise MembershipRuleError(LAST_ADMIN)
        if role is None:
            if current is not None:
                current.delete()
            return None
        if current is None:
            return Membership.objects.create(workspace=workspace, user=user, role=role)
        if current.role != role:
            Membership.objects.filter(pk=current.pk).update(role=role)
            current.role = role
        return current


def membership_set_role(*, membership: Membership, role: str) -> str | None:
    """Change a member's role. Returns an error message instead when it would leave no admin."""
    try:
        membership_change(
            workspace=membership.workspace, user=membership.user, role=role
        )
    except MembershipRuleError as exc:
        return str(exc)
    return None


def membership_remove(*, membership: Membership) -> str | None:
    """Remove a member. Returns an error message instead when it would leave no admin."""
    try:
        membership_change(
            workspace=membership.workspace, user=membership.user, role=None
        )
    except MembershipRuleError as exc:
        return str(exc)
    return None
