"""Creating, checking and revoking API tokens.

A token is `fs_` + 43 random URL-safe characters (256 bits). Only its SHA-256 is stored: a
secret that long needs no slow hash, and a lookup by hash is one indexed query per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from uuid import uuid4

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from api.models import ApiToken
from studio.models import Membership, Role, Workspace

TOKEN_PREFIX = "fs_"
# last_used_at is written at most this often per token (one UPDATE per request would be a hot row).
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(
    *, workspace: Workspace, name: str, role: str, created_by: User | None
) -> IssuedToken:
    """Issue a token with `role` in `workspace`; the answer holds the secret, shown once."""
    name = name.strip()
    if not name or len(name) > 80:
        raise ValueError("A token needs a name of 1 to 80 characters.")
    if role not in Role.values:
        raise ValueError(f"“{role}” is not a role ({', '.join(Role.values)}).")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    code = uuid4()
    with transaction.atomic():
        user = User(
            username=f"api-{slugify(name)[:40] or 'token'}-{code.hex[:8]}",
            first_name=f"API: {name}"[:150],
            is_active=False,  # never logs in; acts only through the token
        )
        user.set_unusable_password()
        user.save()
        Membership.objects.create(workspace=workspace, user=user, role=role)
        token = ApiToken.objects.create(
            workspace=workspace,
            code=code,
            name=name,
            role=role,
            prefix=secret[:10],
            secret_hash=hash_secret(secret),
            user=user,
            created_by=created_by,
        )
    return IssuedToken(token=token, secret=secret)


def token_revoke(*, token: ApiToken) -> bool:
    """Revoke at once: the next request with it is refused. Its service user stays, without a
    membership, so the audit trail keeps naming who did what. True if it was active."""
    with transaction.atomic():
        revoked = (
            ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            == 1
        )
        Membership.objects.filter(user_id=token.user_id).delete()
    return revoked


@dataclass(frozen=True)
class Caller:
    """Who an API request acts as: the token, its workspace and its membership (role)."""

    token: ApiToken
    membership: Membership

    @property
    def workspace(self) -> Workspace:
        return self.membership.workspace

    @property
    def user(self) -> User:
        return self.membership.user

    def has_role(self, role: str) -> bool:
        return self.membership.has_role(role)


def token_authenticate(secret: str) -> Caller | None:
    """The caller for a presented secret, or None (unknown, revoked, or without a membership)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    token = (
        ApiToken.objects.select_related("workspace")
        .filter(secret_hash=hash_secret(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    membership = (
        Membership.objects.select_related("workspace", "user")
        .filter(user_id=token.user_id, workspace_id=token.workspace_id)
        .first()
    )
    if membership is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return Caller(token=token, membership=membership)
