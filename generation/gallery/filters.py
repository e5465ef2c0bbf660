"""The gallery's filters and sorts, kept in the URL, and the options the filter form offers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, StrIndex
from django.utils import timezone

from campaigns.models import PromptTemplate, ReferenceImage, Tag
from campaigns.prompting import NAME_RE
from generation.backends.registry import BACKENDS, MODELS
from generation.gallery.scope import Scope
from generation.models import Asset, ReviewStatus
from studio.input_rules import NUL_MESSAGE, has_nul

MAX_VARIABLE_FILTERS = 5
GROUP_BATCH = "batch"
GROUPS = [("", "No grouping"), (GROUP_BATCH, "Group by batch")]


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


# Apps above generation extend the gallery here from their AppConfig.ready() (checks does), so
# generation never imports them: named filters (`?flag=key`: a label and a function narrowing
# the assets). The related rows each card selects are queries.CARD_RELATED.
FLAG_FILTERS: dict[str, tuple[str, Callable[[QuerySet[Asset]], QuerySet[Asset]]]] = {}


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
    group = forms.ChoiceField(choices=GROUPS, required=False)


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
    group: str = ""  # "batch": a batch's images together under its heading
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
            group=data.get("group") or "",
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
        if self.group and "group" not in skip:
            items.append(("group", self.group))
        return items

    def query_string(self, **extra: str) -> str:
        items = self.query_items() + [(k, v) for k, v in extra.items() if v]
        return f"?{urlencode(items)}" if items else ""

    @property
    def active(self) -> bool:
        """Whether anything narrows the assets (sorting and grouping only arrange them)."""
        return bool(self.query_items(without=("sort", "group")))

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


@dataclass(frozen=True)
class FilterChoices:
    templates: list[PromptTemplate]
    references: list[ReferenceImage]
    tags: list[str]
    backends: list[tuple[str, str]]
    models: list[tuple[str, str]]
    statuses: list[tuple[str, str]]
    sorts: list[Sort]
    groups: list[tuple[str, str]]
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
        groups=GROUPS,
        flags=[(key, label) for key, (label, _narrow) in FLAG_FILTERS.items()],
    )
