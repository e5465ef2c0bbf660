"""The review gallery's read side: keyset pages of cards.

The rest of the read side sits beside it: scope.py (which assets), filters.py (filters and sorts
kept in the URL), counts.py (status counts and progress), compare.py (2 to 4 side by side).

Pages are keyset pages: the URL carries the sort key of the last card shown (`after=`), and the
next page is `WHERE (key, id) < (that key, that id) ORDER BY key, id LIMIT n`. Unlike OFFSET, a
deep page costs what the first one does: the database seeks to the cursor in the
(campaign|batch|workspace, created_at, id) index instead of counting rows up to it. The
condition is written as `key <= k AND (key < k OR id < i)` so its first half is an index bound,
not a filter. The cost sorts work the same way on the asset's own `cost` column (copied at ingest)
and its (scope, cost, id) indexes.

Every page runs a fixed number of queries whatever the gallery's size (tests/generation/
test_gallery_queries.py): one for the cards (generation and template version joined), one for
their tags; the first page adds the status counts and the filter choices. Without filters the
status counts are a few rows of ReviewTally (kept by database triggers) instead of a count over
every asset of the scope, so the first page costs the same at a hundred or a million assets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from campaigns.prompting import NAME_RE
from generation.gallery.filters import (
    DEFAULT_SORT,
    FLAG_FILTERS,
    GROUP_BATCH,
    SORTS,
    Filters,
    GalleryFilterForm,
    Sort,
)
from generation.gallery.scope import Scope
from generation.models import Asset, Comment
from studio.tenancy import get_in_workspace

PAGE_SIZE = 48

# Re-exported: the apps above generation that extend or serve the gallery (checks/hooks.py,
# api/routes_generation.py, bench/gallery.py) reach it through this one module.
__all__ = [
    "CARD_RELATED",
    "DEFAULT_SORT",
    "FLAG_FILTERS",
    "NAME_RE",
    "PAGE_SIZE",
    "SORTS",
    "Filters",
    "GalleryFilterForm",
    "Page",
    "Scope",
    "Sort",
    "asset_for_user",
    "card_queryset",
    "cursor_for",
    "gallery_page",
]

# Related rows each card selects in its one query (reverse one-to-ones), added by the apps above
# generation from their AppConfig.ready() (checks does), so generation never imports them.
CARD_RELATED: list[str] = []


# --- Sorts and cursors -------------------------------------------------------------------------


def cursor_for(asset: Asset, sort: Sort, *, grouped: bool = False) -> str:
    """The keyset cursor after `asset`; grouped by batch it starts with the batch id (0: none)."""
    value = getattr(asset, sort.field)
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    cursor = f"{text}~{asset.pk}"
    return f"{asset.batch_id or 0}~{cursor}" if grouped else cursor


def _parse_cursor(cursor: str, sort: Sort) -> tuple[Any, int] | None:
    text, _, pk = cursor.rpartition("~")
    try:
        value: Any = (
            dt.datetime.fromisoformat(text)
            if sort.field == "created_at"
            else Decimal(text)
        )
        return value, int(pk)
    except (ValueError, InvalidOperation):
        return None


def cursor_group(cursor: str) -> int | None:
    """The batch id a grouped cursor starts with (None: not a grouped cursor)."""
    head, sep, _rest = cursor.partition("~")
    return int(head) if sep and head.isdigit() else None


def _groups_descending(sort: Sort) -> bool:
    # Newest batches first (batch ids grow with time), except when the oldest images come first.
    return sort.descending or sort.field != "created_at"


def _after(
    queryset: QuerySet[Asset], sort: Sort, cursor: str, *, grouped: bool = False
) -> QuerySet[Asset]:
    group = cursor_group(cursor) if grouped else None
    if grouped:
        if group is None:
            return queryset
        cursor = cursor.partition("~")[2]
    parsed = _parse_cursor(cursor, sort)
    if parsed is None:
        return queryset  # a mangled link shows the first page rather than an error
    value, pk = parsed
    name = sort.field
    if sort.descending:
        within = Q(**{f"{name}__lte": value}) & (
            Q(**{f"{name}__lt": value}) | Q(pk__lt=pk)
        )
    else:
        within = Q(**{f"{name}__gte": value}) & (
            Q(**{f"{name}__gt": value}) | Q(pk__gt=pk)
        )
    if group is None:
        return queryset.filter(within)
    later = "lt" if _groups_descending(sort) else "gt"
    return queryset.filter(
        Q(**{f"batch_group__{later}": group}) | (Q(batch_group=group) & within)
    )


# --- Pages -------------------------------------------------------------------------------------


@dataclass
class Page:
    assets: list[Asset]
    next_cursor: str | None
    sort: Sort
    grouped: bool = False
    # Grouped: the batch id (0: none) of the card before this page, whose heading is shown.
    group_before: int | None = None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


def card_queryset(assets: QuerySet[Asset]) -> QuerySet[Asset]:
    """What one card shows, in one query plus one for the tags."""
    return (
        assets.select_related(
            "generation",
            "generation__template_version",
            "generation__template_version__template",
            *CARD_RELATED,
        )
        .defer(
            "generation__provider_details",
            "generation__poll_url",
            "generation__result_url",
            "generation__template_version__body",
        )
        .annotate(
            comment_count=Coalesce(
                Subquery(
                    Comment.objects.filter(asset_id=OuterRef("pk"))
                    .order_by()
                    .values("asset_id")
                    .annotate(n=Count("pk"))
                    .values("n")[:1]
                ),
                0,
            ),
        )
        .prefetch_related("tags")
    )


def gallery_page(
    *, scope: Scope, filters: Filters, after: str = "", size: int = PAGE_SIZE
) -> Page:
    """One keyset page of cards. Grouped by batch, the order is (batch, the sort): a batch's
    images come together, images from no batch last (first with "oldest first"). That order has
    no index, so the database sorts the filtered scope's rows for each page: milliseconds at
    thousands of images, not at millions."""
    sort = filters.sort_spec
    grouped = filters.group == GROUP_BATCH
    prefix = "-" if sort.descending else ""
    order = [f"{prefix}{sort.field}", f"{prefix}pk"]
    assets: QuerySet[Asset]
    if grouped:
        order.insert(0, f"{'-' if _groups_descending(sort) else ''}batch_group")
        # The page's ids are sorted on the asset rows alone (narrow: a few ms at thousands),
        # then only those rows are joined for the cards: still one query.
        keys: QuerySet[Asset] = filters.apply(scope.assets()).alias(
            batch_group=Coalesce("batch_id", 0)
        )
        if after:
            keys = _after(keys, sort, after, grouped=True)
        page_ids = keys.order_by(*order).values("pk")[: size + 1]
        assets = card_queryset(Asset.objects.filter(pk__in=Subquery(page_ids)))
        assets = assets.alias(batch_group=Coalesce("batch_id", 0))
    else:
        assets = card_queryset(filters.apply(scope.assets()))
        if after:
            assets = _after(assets, sort, after)
    rows = list(assets.order_by(*order)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(
        assets=rows,
        next_cursor=cursor_for(rows[-1], sort, grouped=grouped)
        if more and rows
        else None,
        sort=sort,
        grouped=grouped,
        group_before=cursor_group(after) if grouped and after else None,
    )


def asset_for_user(request: Any, code: UUID, *related: str) -> Asset:
    """The current workspace's asset with this code (404 otherwise), with `related` joined.

    The one lookup of an asset for a page: the gallery, the asset page and "change one thing".
    """
    return get_in_workspace(
        request, Asset.objects.select_related("generation", *related), code=code
    )
