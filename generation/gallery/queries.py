"""The review gallery's read side: scopes, filters kept in the URL, sorts, keyset pages, counts,
and the side-by-side comparison of 2 to 4 assets.

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
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django import forms
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, StrIndex
from django.utils import timezone

from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage, Tag
from campaigns.prompting import NAME_RE
from campaigns.textdiff import word_diff
from generation.backends.registry import BACKENDS, MODELS
from generation.models import Asset, Comment, Generation, ReviewStatus, ReviewTally
from studio.input_rules import NUL_MESSAGE, has_nul
from studio.models import Workspace
from studio.tenancy import get_in_workspace

PAGE_SIZE = 48
MAX_VARIABLE_FILTERS = 5
COMPARE_MIN, COMPARE_MAX = 2, 4


# --- Scope -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which assets a gallery shows: a workspace's, a brand's, a campaign's or a batch's."""

    workspace: Workspace
    brand: Brand | None = None
    campaign: Campaign | None = None
    batch: Any = None  # generation.Batch

    @property
    def kind(self) -> str:
        if self.batch is not None:
            return "batch"
        if self.campaign is not None:
            return "campaign"
        if self.brand is not None:
            return "brand"
        return "workspace"

    @property
    def scope_brand(self) -> Brand | None:
        if self.brand is not None:
            return self.brand
        if self.campaign is not None:
            return self.campaign.brand
        if self.batch is not None:
            return self.batch.brand
        return None

    def assets(self) -> QuerySet[Asset]:
        # Asset.campaign/batch are copies of the generation's, each with its own
        # (…, created_at, id) index; a brand's assets are found through their generations.
        assets = Asset.objects.filter(workspace=self.workspace)
        if self.batch is not None:
            return assets.filter(batch=self.batch)
        if self.campaign is not None:
            return assets.filter(campaign=self.campaign)
        if self.brand is not None:
            return assets.filter(generation__brand=self.brand)
        return assets


# --- Sorts and cursors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    key: str
    label: str
    field: str  # the asset column sorted on: "created_at" or "cost"
    descending: bool


SORTS: dict[str, Sort] = {
    sort.key: sort
    for sort in (
        Sort("newest", "Newest first", "created_at", True),
        Sort("oldest", "Oldest first", "created_at", False),
        Sort("cost", "Most expensive first", "cost", True),
        Sort("cheapest", "Cheapest first", "cost", False),
    )
}
DEFAULT_SORT = "newest"


def cursor_for(asset: Asset, sort: Sort) -> str:
    value = getattr(asset, sort.field)
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    return f"{text}~{asset.pk}"


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


def _after(queryset: QuerySet[Asset], sort: Sort, cursor: str) -> QuerySet[Asset]:
    parsed = _parse_cursor(cursor, sort)
    if parsed is None:
        return queryset  # a mangled link shows the first page rather than an error
    value, pk = parsed
    name = sort.field
    if sort.descending:
        return queryset.filter(
            Q(**{f"{name}__lte": value}), Q(**{f"{name}__lt": value}) | Q(pk__lt=pk)
        )
    return queryset.filter(
        Q(**{f"{name}__gte": value}), Q(**{f"{name}__gt": value}) | Q(pk__gt=pk)
    )


# --- Filters -----------------------------------------------------------------------------------


# Apps above generation extend the gallery here from their AppConfig.ready() (checks does), so
# generation never imports them: named filters (`?flag=key`: a label and a function narrowing
# the assets) and related rows each card selects in its one query (reverse one-to-ones).
FLAG_FILTERS: dict[str, tuple[str, Callable[[QuerySet[Asset]], QuerySet[Asset]]]] = {}
CARD_RELATED: list[str] = []


def _backend_choices() -> list[tuple[str, str]]:
    return [(key, cls.label) for key, cls in BACKENDS.items()]


class GalleryFilterForm(forms.Form):
    """The gallery's filters and sort, read from (and written back to) the query string."""

    status = forms.ChoiceField(
        choices=[("", "Any status"), *ReviewStatus.choices], required=False
    )
    backend = forms.ChoiceField(
        choices=[("", "Any backend"), *_backend_choices()], required=False
    )
    model = forms.ChoiceField(
        choices=[("", "Any model"), *MODELS.items()], required=False
    )
    template = forms.UUIDField(required=False)
    version = forms.IntegerField(required=False, min_value=1)
    ref = forms.UUIDField(required=False)
    tag = forms.CharField(required=False, max_length=40)
    starred = forms.BooleanField(required=False)
    since = forms.DateField(required=False)
    until = forms.DateField(required=False)
    sort = forms.ChoiceField(
        choices=[(s.key, s.label) for s in SORTS.values()], required=False
    )


@dataclass(frozen=True)
class Filters:
    status: str = ""
    backend: str = ""
    model: str = ""
    template: str = ""
    version: int | None = None
    ref: str = ""
    tag: str = ""
    starred: bool = False
    since: dt.date | None = None
    until: dt.date | None = None
    variables: tuple[tuple[str, str], ...] = ()
    flag: str = ""
    sort: str = DEFAULT_SORT
    # Values refused by the shared input rules (studio/input_rules.py), shown by the filter form.
    errors: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> Filters:
        """Valid values only: a field that does not parse is dropped, never an error page."""
        form = GalleryFilterForm(query)
        form.is_valid()
        data = form.cleaned_data
        getlist = getattr(query, "getlist", lambda key: [query.get(key)])
        variables: list[tuple[str, str]] = []
        errors: list[str] = []
        for item in getlist("var") or []:
            if has_nul(item):
                errors.append(NUL_MESSAGE.format(what="The variable filter"))
                continue
            name, sep, value = str(item or "").partition("=")
            name, value = name.strip(), value.strip()
            if sep and NAME_RE.match(name) and len(value) <= 500:
                variables.append((name, value))
        return cls(
            status=data.get("status") or "",
            backend=data.get("backend") or "",
            model=data.get("model") or "",
            template=str(data["template"]) if data.get("template") else "",
            version=data.get("version"),
            ref=str(data["ref"]) if data.get("ref") else "",
            tag=(data.get("tag") or "").strip().lower(),
            starred=bool(data.get("starred")),
            since=data.get("since"),
            until=data.get("until"),
            variables=tuple(variables[:MAX_VARIABLE_FILTERS]),
            flag=flag if (flag := str(query.get("flag") or "")) in FLAG_FILTERS else "",
            sort=data.get("sort") or DEFAULT_SORT,
            errors=tuple(dict.fromkeys(errors)),
        )

    @property
    def sort_spec(self) -> Sort:
        return SORTS[self.sort]

    def query_items(self, *, without: Iterable[str] = ()) -> list[tuple[str, str]]:
        """The canonical query string items (defaults left out), for links and hx-push-url."""
        skip = set(without)
        items: list[tuple[str, str]] = []
        for name in ("status", "backend", "model", "template"):
            if getattr(self, name) and name not in skip:
                items.append((name, getattr(self, name)))
        if self.version is not None and "version" not in skip:
            items.append(("version", str(self.version)))
        items += [("var", f"{k}={v}") for k, v in self.variables if "var" not in skip]
        for name in ("ref", "tag"):
            if getattr(self, name) and name not in skip:
                items.append((name, getattr(self, name)))
        if self.starred and "starred" not in skip:
            items.append(("starred", "1"))
        if self.flag and "flag" not in skip:
            items.append(("flag", self.flag))
        for name in ("since", "until"):
            if getattr(self, name) and name not in skip:
                items.append((name, getattr(self, name).isoformat()))
        if self.sort != DEFAULT_SORT and "sort" not in skip:
            items.append(("sort", self.sort))
        return items

    def query_string(self, **extra: str) -> str:
        items = self.query_items() + [(k, v) for k, v in extra.items() if v]
        return f"?{urlencode(items)}" if items else ""

    @property
    def active(self) -> bool:
        return bool(self.query_items(without=("sort",)))

    def apply(
        self, assets: QuerySet[Asset], *, with_status: bool = True
    ) -> QuerySet[Asset]:
        if self.status and with_status:
            assets = assets.filter(review_status=self.status)
        if self.backend:
            assets = assets.filter(generation__backend=self.backend)
        if self.model:
            assets = assets.filter(generation__model=self.model)
        if self.template:
            assets = assets.filter(
                generation__template_version__template__code=self.template
            )
            if self.version is not None:
                assets = assets.filter(
                    generation__template_version__number=self.version
                )
        assets = _json_filters(assets, self.variables, self.ref)
        if self.tag:
            assets = assets.filter(
                Exists(
                    Asset.tags.through.objects.filter(
                        asset_id=OuterRef("pk"), tag__name=self.tag
                    )
                )
            )
        if self.starred:
            assets = assets.filter(starred=True)
        if self.flag in FLAG_FILTERS:
            assets = FLAG_FILTERS[self.flag][1](assets)
        if self.since:
            assets = assets.filter(created_at__gte=_day_start(self.since))
        if self.until:
            assets = assets.filter(
                created_at__lt=_day_start(self.until + dt.timedelta(days=1))
            )
        return assets


def _json_filters(
    assets: QuerySet[Asset], variables: Iterable[tuple[str, str]], ref: str
) -> QuerySet[Asset]:
    """ "Variable value" and "Reference used" on either database.

    PostgreSQL: jsonb containment (@>), which its GIN-indexable operator answers exactly. SQLite
    has no containment lookup ("contains lookup is not supported on this database backend"): a
    variable compares the key's text (json_extract), and a reference searches the stored JSON text
    for `"code": "<code>"` with INSTR, which is case-sensitive (LIKE is not on SQLite); the text
    is json.dumps's own, the same encoder JSONField used to store it.
    """
    contains = connection.features.supports_json_field_contains
    for index, (name, value) in enumerate(variables):
        if contains:
            assets = assets.filter(generation__variables__contains={name: value})
        else:
            alias = f"_var_{index}"
            # Cast: a plain text comparison (a bare key transform would compare as JSON).
            assets = assets.alias(
                **{
                    alias: Cast(
                        KeyTextTransform(name, "generation__variables"), TextField()
                    )
                }
            ).filter(**{alias: value})
    if ref:
        if contains:
            assets = assets.filter(generation__references__contains=[{"code": ref}])
        else:
            needle = json.dumps({"code": ref})[1:-1]
            assets = assets.alias(
                _ref_at=StrIndex(
                    Cast("generation__references", TextField()), Value(needle)
                )
            ).filter(_ref_at__gt=0)
    return assets


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


# --- Pages -------------------------------------------------------------------------------------


@dataclass
class Page:
    assets: list[Asset]
    next_cursor: str | None
    sort: Sort

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
    sort = filters.sort_spec
    assets = card_queryset(filters.apply(scope.assets()))
    if after:
        assets = _after(assets, sort, after)
    prefix = "-" if sort.descending else ""
    assets = assets.order_by(f"{prefix}{sort.field}", f"{prefix}pk")
    rows = list(assets[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(
        assets=rows,
        next_cursor=cursor_for(rows[-1], sort) if more and rows else None,
        sort=sort,
    )


# Progress bars fill from the left with what is done: approved first, pending last.
BAR_ORDER = (
    ReviewStatus.APPROVED,
    ReviewStatus.CHANGES_REQUESTED,
    ReviewStatus.REJECTED,
    ReviewStatus.PENDING,
)


@dataclass(frozen=True)
class ReviewCounts:
    """Assets per review status, for chips and progress bars."""

    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def decided(self) -> int:
        return self.total - self.counts.get(ReviewStatus.PENDING, 0)

    def percent(self, status: str) -> float:
        return 100 * self.counts.get(status, 0) / self.total if self.total else 0.0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per status, with the bar segment's start and width in percent."""
        start, out = 0.0, []
        for value in BAR_ORDER:
            label = ReviewStatus(value).label
            width = self.percent(value)
            out.append(
                {
                    "status": value,
                    "label": label,
                    "count": self.counts.get(value, 0),
                    "start": round(start, 3),
                    "width": round(width, 3),
                }
            )
            start += width
        return out

    @property
    def approved_percent(self) -> int:
        return round(self.percent(ReviewStatus.APPROVED))


def review_counts(assets: QuerySet[Asset]) -> ReviewCounts:
    rows = assets.order_by().values_list("review_status").annotate(n=Count("pk"))
    return ReviewCounts(counts=dict(rows))


def _tallied(kind: str, scope_id: int) -> ReviewCounts:
    rows = ReviewTally.objects.filter(kind=kind, scope_id=scope_id, n__gt=0)
    return ReviewCounts(counts=dict(rows.values_list("review_status", "n")))


def scope_review_counts(*, scope: Scope, filters: Filters) -> ReviewCounts:
    """The status chips' counts: the scope's tallies when no filter narrows it (PostgreSQL keeps
    them, see ReviewTally), else a count over the filtered assets (the status filter aside)."""
    narrowed = filters.query_items(without=("sort", "status"))
    kind = {"workspace": "w", "campaign": "c", "batch": "b"}.get(scope.kind)
    if narrowed or kind is None or connection.vendor != "postgresql":
        return review_counts(filters.apply(scope.assets(), with_status=False))
    scope_id = {
        "w": scope.workspace.pk,
        "c": scope.campaign.pk if scope.campaign else None,
        "b": scope.batch.pk if scope.batch is not None else None,
    }[kind]
    return _tallied(kind, scope_id)


def campaign_review_counts(*, campaign: Campaign) -> ReviewCounts:
    """A campaign's approval progress (campaign page)."""
    if connection.vendor == "postgresql":
        return _tallied("c", campaign.pk)
    return review_counts(
        Asset.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign)
    )


def template_version_approvals(*, template: PromptTemplate) -> dict[int, ReviewCounts]:
    """Per version number of a template: its images by review status (which prompts win)."""
    rows = (
        Asset.objects.filter(
            workspace_id=template.workspace_id,
            generation__template_version__template=template,
        )
        .order_by()
        .values_list("generation__template_version__number", "review_status")
        .annotate(n=Count("pk"))
    )
    counts: dict[int, dict[str, int]] = {}
    for number, status, n in rows:
        counts.setdefault(number, {})[status] = n
    return {number: ReviewCounts(counts=c) for number, c in counts.items()}


@dataclass(frozen=True)
class FilterChoices:
    templates: list[PromptTemplate]
    references: list[ReferenceImage]
    tags: list[str]
    backends: list[tuple[str, str]]
    models: list[tuple[str, str]]
    statuses: list[tuple[str, str]]
    sorts: list[Sort]
    flags: list[tuple[str, str]] = field(default_factory=list)


def filter_choices(*, scope: Scope) -> FilterChoices:
    """The filters' options: from the brand and the registry, never from scanning assets."""
    brand = scope.scope_brand
    templates = PromptTemplate.objects.filter(workspace=scope.workspace)
    references = ReferenceImage.objects.filter(workspace=scope.workspace)
    if brand is not None:
        templates, references = (
            templates.filter(brand=brand),
            references.filter(brand=brand),
        )
    return FilterChoices(
        templates=list(templates.only("code", "name").order_by("name", "pk")[:200]),
        references=list(
            references.only("code", "title", "original_name", "role").order_by(
                "title", "original_name", "pk"
            )[:300]
        ),
        tags=list(
            Tag.objects.filter(workspace=scope.workspace)
            .order_by("name")
            .values_list("name", flat=True)[:300]
        ),
        backends=_backend_choices(),
        models=list(MODELS.items()),
        statuses=list(ReviewStatus.choices),
        sorts=list(SORTS.values()),
        flags=[(key, label) for key, (label, _narrow) in FLAG_FILTERS.items()],
    )


# --- Compare -----------------------------------------------------------------------------------


def readable_prompt(prompt: str) -> str:
    """A JSON prompt pretty-printed (two-space indent); a text prompt as sent."""
    text = prompt.strip()
    if text.startswith("{"):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        except ValueError:
            pass
    return prompt


@dataclass(frozen=True)
class CompareRow:
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1

    @property
    def cells(self) -> list[tuple[str, bool]]:
        """(value, differs from the first column) per column."""
        return [(v, i > 0 and v != self.values[0]) for i, v in enumerate(self.values)]


@dataclass(frozen=True)
class Comparison:
    assets: list[Asset]
    prompts: list[list[tuple[str, str]]]
    rows: list[CompareRow]
    scale: float  # CSS pixels per image pixel, the same for every image

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Per image: its letter, and its display size at the common scale."""
        return [
            {
                "asset": a,
                "letter": "ABCD"[i],
                "width": max(1, round(a.width * self.scale)),
                "height": max(1, round(a.height * self.scale)),
                "prompt": self.prompts[i],
            }
            for i, a in enumerate(self.assets)
        ]

    @property
    def letters(self) -> str:
        return "ABCD"[: len(self.assets)]


def compare_assets(*, workspace: Workspace, codes: Sequence[str]) -> Comparison:
    """Load 2–4 assets of the workspace in the order given (missing ones: LookupError)."""
    unique = list(dict.fromkeys(codes))
    found = {
        str(a.code): a
        for a in card_queryset(Asset.objects.filter(workspace=workspace)).filter(
            code__in=unique
        )
    }
    if len(found) != len(unique):
        raise LookupError("Some of these images are not in this workspace.")
    assets = [found[code] for code in unique]
    prompts = [readable_prompt(a.generation.prompt) for a in assets]
    diffs = [[("same", prompts[0])]] + [word_diff(prompts[0], p) for p in prompts[1:]]
    gens: list[Generation] = [a.generation for a in assets]
    names: list[str] = []
    for g in gens:
        for name in getattr(g, "variables", None) or {}:
            if name not in names:
                names.append(name)
    rows = [
        CompareRow("Model", [g.model for g in gens]),
        CompareRow("Backend", [g.backend for g in gens]),
        CompareRow("Seed", [_text(g.seed) for g in gens]),
        CompareRow("Size", [f"{g.width}×{g.height}" for g in gens]),
        CompareRow(
            "Template",
            [
                f"{g.template_version.template.name} v{g.template_version.number}"
                if g.template_version
                else "—"
                for g in gens
            ],
        ),
        *[
            CompareRow(
                f"{{{name}}}",
                [_text((getattr(g, "variables", None) or {}).get(name)) for g in gens],
            )
            for name in names
        ],
        CompareRow(
            "References",
            [
                ", ".join(
                    f"{r.get('role', '?')}: {str(r.get('code') or r.get('name') or r.get('file', ''))[:8]}"
                    for r in g.references
                )
                or "—"
                for g in gens
            ],
        ),
        CompareRow(
            "Parameters",
            [json.dumps(g.params, sort_keys=True) if g.params else "—" for g in gens],
        ),
        CompareRow("Status", [a.get_review_status_display() for a in assets]),
        CompareRow("Cost", [f"${a.cost:.4f}" for a in assets]),  # type: ignore[attr-defined]
    ]
    # Same scale for all: the tallest image 560 px high, and all side by side within ~1200 px.
    tallest = max(a.height for a in assets)
    total_width = sum(a.width for a in assets)
    scale = min(1.0, 560 / tallest, 1200 / total_width)
    return Comparison(assets=assets, prompts=diffs, rows=rows, scale=scale)


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def asset_for_user(request: Any, code: UUID, *related: str) -> Asset:
    """The current workspace's asset with this code (404 otherwise), with `related` joined.

    The one lookup of an asset for a page: the gallery, the asset page and "change one thing".
    """
    return get_in_workspace(
        request, Asset.objects.select_related("generation", *related), code=code
    )
