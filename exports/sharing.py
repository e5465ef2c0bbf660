"""Outside review links: share a pack or a gallery selection with someone without an account.

- The token is 32 random bytes (URL-safe); only its SHA-256 is stored, so the link is shown once.
- A link grants exactly its assets (fixed when made), until it expires or is revoked.
- The outside reviewer gives a name once (kept in a cookie signed for that link). Each decision
  or comment goes through the review services (campaigns/review.py) with the link's creator as
  the actor, its text marked "[external] <name> via share link <id>", and a ShareFeedback row
  says which audit records it produced. Approving needs the creator to be an approver still:
  the review services check that at every decision.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from exports import manifest
from exports.models import ExportPack, ShareFeedback, ShareLink
from generation.models import Asset, ReviewStatus
from generation.review import assets_review, comment_add
from studio.models import Membership, Role, Workspace

MAX_DAYS = 90
MAX_NAME = 100
DECISIONS: dict[str, ReviewStatus] = {  # keyed by the Kind values (TextChoices are str)
    ShareFeedback.Kind.APPROVE: ReviewStatus.APPROVED,
    ShareFeedback.Kind.CHANGES: ReviewStatus.CHANGES_REQUESTED,
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def share_link_create(
    *,
    workspace: Workspace,
    user: Any,
    pack: ExportPack | None = None,
    assets: list[Asset] | None = None,
    days: int | None = None,
) -> tuple[ShareLink, str]:
    """A new link for a pack or a selection; answers it and its token (shown once)."""
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None or not membership.has_role(Role.APPROVER):
        raise PermissionDenied(
            "Only an approver or higher may share for outside review."
        )
    if (pack is None) == (assets is None):
        raise ValidationError("Share a pack or a selection.")
    days = settings.SHARE_LINK_DAYS if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"A link lasts 1 to {MAX_DAYS} days.")
    if pack is not None:
        if pack.workspace_id != workspace.pk:
            raise PermissionDenied
        ids, title = list(pack.asset_ids), pack.title
    else:
        ids = [a.pk for a in assets or [] if a.workspace_id == workspace.pk]
        title = f"Selection of {len(ids)} image{'s' if len(ids) != 1 else ''}"
    if not ids:
        raise ValidationError("Nothing to share.")
    token = secrets.token_urlsafe(32)
    link = ShareLink.objects.create(
        workspace=workspace,
        token_hash=_hash(token),
        title=title[:200],
        pack=pack,
        asset_ids=ids,
        created_by=user,
        expires_at=timezone.now() + timedelta(days=days),
    )
    return link, token


def share_link_revoke(*, link: ShareLink) -> bool:
    return bool(
        ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def share_link_resolve(token: str) -> ShareLink | None:
    """The live link for a token: None when unknown, expired or revoked (all look the same)."""
    if not token or len(token) > 100:
        return None
    return (
        ShareLink.objects.select_related("workspace", "pack", "created_by")
        .filter(
            token_hash=_hash(token),
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def share_assets(link: ShareLink) -> list[Asset]:
    """Exactly the link's assets, in its order (deleted ones left out)."""
    return manifest.described_assets(link.workspace_id, link.asset_ids)


def share_asset(link: ShareLink, code: Any) -> Asset | None:
    """One asset of the link by its code; None for any asset the link does not grant."""
    return Asset.objects.filter(
        workspace_id=link.workspace_id, pk__in=link.asset_ids, code=code
    ).first()


def share_rate_allowed(address: str | None) -> bool:
    """SHARE_RATE_LIMIT requests a minute per address over all share pages (a fixed window in
    the cache, Redis in production): slows down token guessing and scripted decisions."""
    slot = int(timezone.now().timestamp() // 60)
    key = f"share:rate:{address or 'unknown'}:{slot}"
    cache.add(key, 0, 120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, 120)
        count = 1
    return count <= settings.SHARE_RATE_LIMIT


def clean_reviewer_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Tell us your name first.")
    if len(name) > MAX_NAME:
        raise ValidationError(f"Keep the name under {MAX_NAME} characters.")
    return name


def share_feedback_record(
    *, link: ShareLink, asset: Asset, reviewer: str, kind: str, comment: str = ""
) -> ShareFeedback:
    """An outside decision or comment into the audit trail, marked external."""
    if kind not in ShareFeedback.Kind.values:
        raise ValidationError("Approve, ask for changes or comment.")
    if asset.pk not in link.asset_ids or asset.workspace_id != link.workspace_id:
        raise PermissionDenied
    reviewer = clean_reviewer_name(reviewer)
    comment = (comment or "").strip()
    if kind == ShareFeedback.Kind.COMMENT and not comment:
        raise ValidationError("Write something first.")
    actor = link.created_by
    if actor is None:
        raise PermissionDenied("This link can no longer record decisions.")
    marked = f"[external] {reviewer} via share link {link.code.hex[:8]}"
    text = f"{marked}: {comment}" if comment else marked
    event = note = None
    with transaction.atomic():
        if kind in DECISIONS:
            events = assets_review(
                workspace_id=link.workspace_id,
                asset_ids=[asset.pk],
                actor=actor,
                to_status=DECISIONS[kind],
                comment=text,
            )
            event = events[0] if events else None
        if event is None:
            # A comment, or a decision the asset already had (the review service records no
            # event then): a comment keeps it in the asset's timeline all the same.
            label = ShareFeedback.Kind(kind).label.lower()
            note = comment_add(
                asset=asset,
                author=actor,
                body=text
                if kind == ShareFeedback.Kind.COMMENT
                else f"{marked} {label}" + (f": {comment}" if comment else "."),
            )
        return ShareFeedback.objects.create(
            link=link,
            asset=asset,
            reviewer=reviewer,
            kind=kind,
            comment=comment,
            review_event=event,
            review_comment=note,
        )
