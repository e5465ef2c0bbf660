"""Invitations: how someone joins a workspace (docs/security.md).

An admin invites an e-mail address with a role. The invitee gets a signed link by e-mail (and the
admin sees the same link, so it works without mail); whoever opens it before it expires may accept
it once, with a new account or one they log in to. Nothing here looks up accounts by e-mail or
name, so inviting never tells the admin whether an account exists.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from studio.models import Invitation, Membership, Role, Workspace
from studio.services import membership_change

SALT = "studio.invitation"
logger = logging.getLogger(__name__)


def invitation_lifetime() -> timedelta:
    return timedelta(days=settings.STUDIO_INVITATION_DAYS)


def invitation_create(
    *, workspace: Workspace, email: str, role: str, invited_by: User
) -> Invitation:
    """A new invitation; an earlier pending one to the same address in this workspace is replaced."""
    email = email.strip().lower()
    with transaction.atomic():
        Invitation.objects.pending().filter(workspace=workspace, email=email).delete()
        return Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            invited_by=invited_by,
            expires_at=timezone.now() + invitation_lifetime(),
        )


def invitation_token(invitation: Invitation) -> str:
    """The signed, timestamped token of the accept link. It names the invitation and nothing else."""
    return signing.dumps(str(invitation.code), salt=SALT)


def invitation_from_token(token: str) -> Invitation | None:
    """The pending invitation a link names, or None: bad signature, expired, used or revoked."""
    try:
        code = signing.loads(token, salt=SALT, max_age=invitation_lifetime())
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        return None
    return (
        Invitation.objects.pending()
        .select_related("workspace", "invited_by")
        .filter(code=code)
        .first()
    )


def invitation_send(*, invitation: Invitation, link: str) -> None:
    """E-mail the link to the invitee, after the invitation is committed (Django's mail framework)."""
    inviter = invitation.invited_by
    who = (inviter.get_full_name() or inviter.username) if inviter else "An admin"
    subject = f"Join {invitation.workspace.name} on Flux Studio"
    body = (
        f"{who} invites you to the workspace {invitation.workspace.name} as "
        f"{Role(invitation.role).label.lower()}.\n\n"
        f"Accept with this link (it works once, until "
        f"{timezone.localtime(invitation.expires_at):%Y-%m-%d %H:%M %Z}):\n{link}\n\n"
        "If you did not expect this, ignore this e-mail.\n"
    )

    def send() -> None:
        # After commit, and never fatal: the admin already has the link to pass on.
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])
        except Exception:
            logger.warning(
                "invitation mail to %s failed", invitation.email, exc_info=True
            )

    transaction.on_commit(send)


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.delete()


def invitation_accept(*, invitation: Invitation, user: User) -> Membership | None:
    """Make `user` a member with the invitation's role; the link is used up.

    A member already holding that role or a higher one keeps it: accepting never demotes, so the
    last-admin rule cannot be walked around with an invitation. Returns None when the invitation
    was used or revoked meanwhile.
    """
    with transaction.atomic():
        fresh = (
            Invitation.objects.pending()
            .select_for_update()
            .filter(pk=invitation.pk)
            .first()
        )
        if fresh is None:
            return None
        current = Membership.objects.filter(
            workspace_id=fresh.workspace_id, user=user
        ).first()
        role = fresh.role
        if current is not None and Role.rank(current.role) >= Role.rank(role):
            role = current.role
        membership = membership_change(workspace=fresh.workspace, user=user, role=role)
        Invitation.objects.filter(pk=fresh.pk).update(
            accepted_at=timezone.now(), accepted_by=user
        )
    return membership
