"""Review services: decide, star, tag and comment on assets, one at a time or a selection.

The role rules live here, on the server, whatever a page shows:
- approve, reject, and put back to pending (undo a decision): approvers and admins;
- request changes, comment, star and tag: editors and up;
- viewers look.
A refused action raises PermissionDenied (views answer 403).

A decision is one transaction: generation/assets.py moves the asset with a conditional UPDATE on
the status it held, and this module writes one ReviewEvent per asset that moved (who, when,
from → to, comment). Review lives next to the asset it reviews (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from generation import assets as asset_services
from generation import signals
from generation.models import Asset, Comment, ReviewEvent, ReviewStatus
from studio.models import Membership, Role

MAX_COMMENT_CHARS = 5000
MAX_SELECTION = 500

# The least powerful role that may move an asset to each status.
DECISION_ROLE: dict[str, str] = {
    ReviewStatus.APPROVED: Role.APPROVER,
    ReviewStatus.REJECTED: Role.APPROVER,
    ReviewStatus.PENDING: Role.APPROVER,
    ReviewStatus.CHANGES_REQUESTED: Role.EDITOR,
}
EDIT_ROLE = Role.EDITOR  # star, tag, comment


def may(*, membership: Membership | None, action: str) -> bool:
    """Whether a member may take `action`: a status value, or "star", "tag", "comment"."""
    if membership is None:
        return False
    return membership.has_role(DECISION_ROLE.get(action, EDIT_ROLE))


def _require(*, workspace_id: int, actor: User, action: str) -> None:
    membership = Membership.objects.filter(
        workspace_id=workspace_id, user_id=actor.pk
    ).first()
    if not may(membership=membership, action=action):
        role = Role(DECISION_ROLE.get(action, EDIT_ROLE)).label.lower()
        what = (
            ReviewStatus(action).label.lower()
            if action in ReviewStatus.values
            else action
        )
        raise PermissionDenied(f"Only a {role} or higher may {_verb(what)}.")


def _verb(what: str) -> str:
    return {
        "approved": "approve",
        "rejected": "reject",
        "pending": "reopen a decision",
        "changes requested": "request changes",
    }.get(what, what)


def _clean_comment(comment: str) -> str:
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValidationError(
            f"Keep comments under {MAX_COMMENT_CHARS:,} characters.", code="too_long"
        )
    return comment


def assets_review(
    *,
    workspace_id: int,
    asset_ids: Sequence[int],
    actor: User,
    to_status: str,
    comment: str = "",
) -> list[ReviewEvent]:
    """Decide on a selection; answer the audit events of the assets that changed status.

    Assets already in `to_status` are skipped (no event), so repeating a decision is harmless.
    """
    if to_status not in ReviewStatus.values:
        raise ValidationError(f"“{to_status}” is not a review status.", code="status")
    _require(workspace_id=workspace_id, actor=actor, action=to_status)
    comment = _clean_comment(comment)
    if len(asset_ids) > MAX_SELECTION:
        raise ValidationError(
            f"Select at most {MAX_SELECTION} images at a time.", code="too_many"
        )
    now = timezone.now()
    with transaction.atomic():
        moved = asset_services.asset_statuses_set(
            workspace_id=workspace_id,
            asset_ids=asset_ids,
            to_status=to_status,
            now=now,
        )
        events = ReviewEvent.objects.bulk_create(
            [
                ReviewEvent(
                    workspace_id=workspace_id,
                    asset_id=asset_id,
                    actor=actor,
                    from_status=from_status,
                    to_status=to_status,
                    comment=comment,
                    created_at=now,
                )
                for asset_id, from_status in moved
            ]
        )
        if events:
            # For the layers above (webhooks out), once the decision is committed.
            transaction.on_commit(
                lambda: signals.assets_reviewed.send(sender=ReviewEvent, events=events)
            )
    return events


def asset_review(
    *, asset: Asset, actor: User, to_status: str, comment: str = ""
) -> ReviewEvent | None:
    """Decide on one asset: one conditional UPDATE plus its audit event, in one transaction.

    None when the asset already had `to_status` (nothing changed, nothing recorded).
    """
    events = assets_review(
        workspace_id=asset.workspace_id,
        asset_ids=[asset.pk],
        actor=actor,
        to_status=to_status,
        comment=comment,
    )
    return events[0] if events else None


def assets_star(
    *, workspace_id: int, asset_ids: Sequence[int], actor: User, starred: bool
) -> int:
    _require(workspace_id=workspace_id, actor=actor, action="star")
    return asset_services.asset_stars_set(
        workspace_id=workspace_id, asset_ids=asset_ids, starred=starred
    )


def asset_star(*, asset: Asset, actor: User, starred: bool) -> bool:
    assets_star(
        workspace_id=asset.workspace_id,
        asset_ids=[asset.pk],
        actor=actor,
        starred=starred,
    )
    return starred


def assets_tag(
    *,
    workspace_id: int,
    asset_ids: Sequence[int],
    actor: User,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> list[str]:
    """Add and remove tags on a selection; answer the names added (normalised)."""
    _require(workspace_id=workspace_id, actor=actor, action="tag")
    with transaction.atomic():
        added = asset_services.asset_tags_add(
            workspace_id=workspace_id, asset_ids=asset_ids, names=add
        )
        asset_services.asset_tags_remove(
            workspace_id=workspace_id, asset_ids=asset_ids, names=remove
        )
    return added


def asset_tag(
    *, asset: Asset, actor: User, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> list[str]:
    return assets_tag(
        workspace_id=asset.workspace_id,
        asset_ids=[asset.pk],
        actor=actor,
        add=add,
        remove=remove,
    )


def comment_add(*, asset: Asset, author: User, body: str) -> Comment:
    _require(workspace_id=asset.workspace_id, actor=author, action="comment")
    body = _clean_comment(body)
    if not body:
        raise ValidationError("Write something first.", code="empty")
    return Comment.objects.create(
        workspace_id=asset.workspace_id, asset_id=asset.pk, author=author, body=body
    )


def asset_focal_point(
    *, asset: Asset, actor: User, x: float | None, y: float | None
) -> None:
    """Where crops for other formats must keep the subject (fractions of width and height)."""
    _require(workspace_id=asset.workspace_id, actor=actor, action="tag")
    try:
        asset_services.asset_focal_point_set(
            workspace_id=asset.workspace_id, asset_id=asset.pk, x=x, y=y
        )
    except ValueError as exc:
        raise ValidationError(str(exc), code="focal_point") from exc


def review_timeline(*, asset: Asset) -> list[ReviewEvent | Comment]:
    """Decisions and comments on an asset, oldest first."""
    events = list(
        ReviewEvent.objects.filter(
            workspace_id=asset.workspace_id, asset_id=asset.pk
        ).select_related("actor")
    )
    comments = list(
        Comment.objects.filter(
            workspace_id=asset.workspace_id, asset_id=asset.pk
        ).select_related("author")
    )
    return sorted([*events, *comments], key=lambda item: (item.created_at, item.pk))
