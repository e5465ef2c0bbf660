"""Writes to an asset's review fields: status, star, tags, focal point.

Only generation/review.py calls these: it decides who may do what, and writes the audit trail in
the same transaction. Each function takes a workspace and asset ids and touches nothing else,
so a selection that names another workspace's asset changes nothing there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction

from campaigns.models import Tag
from generation.models import Asset
from studio.input_rules import refuse_nul

MAX_TAGS_PER_ASSET = 20


def asset_statuses_set(
    *, workspace_id: int, asset_ids: Sequence[int], to_status: str, now: datetime
) -> list[tuple[int, str]]:
    """Move assets to `to_status`; answer (asset id, previous status) for each one that moved.

    Runs in the caller's transaction (one is opened if there is none). The rows are locked in id
    order (two overlapping bulk actions cannot deadlock), then each previous status gets ONE
    conditional UPDATE `WHERE review_status = <previous>`, so the previous status written to the
    audit trail is exactly what the row held. Assets already in `to_status` are left alone: a
    repeated key press or a duplicate POST records nothing.
    """
    # savepoint=False: inside the caller's transaction a savepoint would buy nothing, since a
    # failure here rolls the whole decision back anyway.
    with transaction.atomic(savepoint=False):
        rows = list(
            Asset.objects.select_for_update()
            .filter(workspace_id=workspace_id, pk__in=list(asset_ids))
            .exclude(review_status=to_status)
            .order_by("pk")
            .values_list("pk", "review_status")
        )
        by_status: dict[str, list[int]] = defaultdict(list)
        for pk, status in rows:
            by_status[status].append(pk)
        moved: list[tuple[int, str]] = []
        for status, pks in by_status.items():
            updated = Asset.objects.filter(pk__in=pks, review_status=status).update(
                review_status=to_status, reviewed_at=now
            )
            if updated != len(pks):  # impossible while the rows are locked
                raise RuntimeError(f"Moved {updated} of {len(pks)} locked assets.")
            moved += [(pk, status) for pk in pks]
    return moved


def asset_stars_set(
    *, workspace_id: int, asset_ids: Sequence[int], starred: bool
) -> int:
    return (
        Asset.objects.filter(workspace_id=workspace_id, pk__in=list(asset_ids))
        .exclude(starred=starred)
        .update(starred=starred)
    )


def normalise_tag_names(names: Iterable[str]) -> list[str]:
    """Lower case, inner spaces collapsed, at most 40 characters, duplicates dropped.

    A name with a NUL character raises ValidationError (studio/input_rules.py)."""
    out: list[str] = []
    for name in names:
        refuse_nul(str(name), "A tag")
        clean = " ".join(str(name).split()).lower()[:40]
        if clean and clean not in out:
            out.append(clean)
    return out


def asset_tags_add(
    *, workspace_id: int, asset_ids: Sequence[int], names: Iterable[str]
) -> list[str]:
    """Add tags (created in the workspace when new); answer the normalised names."""
    names = normalise_tag_names(names)[:MAX_TAGS_PER_ASSET]
    if not names or not asset_ids:
        return names
    Tag.objects.bulk_create(
        [Tag(workspace_id=workspace_id, name=name) for name in names],
        ignore_conflicts=True,
    )
    tag_ids = list(
        Tag.objects.filter(workspace_id=workspace_id, name__in=names).values_list(
            "pk", flat=True
        )
    )
    ids = list(
        Asset.objects.filter(
            workspace_id=workspace_id, pk__in=list(asset_ids)
        ).values_list("pk", flat=True)
    )
    Through = Asset.tags.through
    Through.objects.bulk_create(
        [Through(asset_id=a, tag_id=t) for a in ids for t in tag_ids],
        ignore_conflicts=True,
    )
    return names


def asset_tags_remove(
    *, workspace_id: int, asset_ids: Sequence[int], names: Iterable[str]
) -> int:
    names = normalise_tag_names(names)
    deleted, _ = Asset.tags.through.objects.filter(
        asset__workspace_id=workspace_id,
        asset_id__in=list(asset_ids),
        tag__workspace_id=workspace_id,
        tag__name__in=names,
    ).delete()
    return deleted


def asset_focal_point_set(
    *, workspace_id: int, asset_id: int, x: float | None, y: float | None
) -> bool:
    if (x is None) != (y is None):
        raise ValueError("Give both coordinates of the focal point, or neither.")
    if x is not None and y is not None and not (0 <= x <= 1 and 0 <= y <= 1):
        raise ValueError("The focal point must lie inside the image (0 to 1).")
    return bool(
        Asset.objects.filter(workspace_id=workspace_id, pk=asset_id).update(
            focal_x=x, focal_y=y
        )
    )
