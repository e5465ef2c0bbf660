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


def membership_add(*, workspace: Workspace, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership


def _last_admin(membership: Membership) -> bool:
    return (
        membership.role == Role.ADMIN
        and not Membership.objects.filter(
            workspace=membership.workspace, role=Role.ADMIN
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def membership_set_role(*, membership: Membership, role: str) -> str | None:
    """Change a member's role. Returns an error message instead when it would leave no admin."""
    if role != Role.ADMIN and _last_admin(membership):
        return "A workspace needs at least one admin."
    Membership.objects.filter(pk=membership.pk).update(role=role)
    return None


def membership_remove(*, membership: Membership) -> str | None:
    if _last_admin(membership):
        return "A workspace needs at least one admin."
    membership.delete()
    return None
