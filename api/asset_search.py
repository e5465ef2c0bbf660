"""GET /assets: the API's query to the gallery's filters, sorts and keyset pages (the same code as
the gallery page, generation/gallery/queries.py), with the gallery's cursor wrapped opaquely."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID

from django.http import QueryDict
from django.shortcuts import get_object_or_404
from ninja import Schema
from pydantic import Field

from api import lookups
from api import representations as rep
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode
from api.problems import Problem
from api.tokens import Caller
from campaigns.models import Brand, Campaign
from generation.gallery import queries as gallery


class AssetQuery(Schema):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    brand: UUID | None = None
    campaign: UUID | None = None
    batch: UUID | None = None
    status: str | None = None
    backend: str | None = None
    model: str | None = None
    template: UUID | None = None
    version: int | None = Field(default=None, ge=1)
    ref: UUID | None = None
    tag: str | None = Field(default=None, max_length=40)
    flag: str | None = Field(
        default=None,
        max_length=40,
        description="brand-check flag: needs-review, off-palette, text-mismatch, logo-missing, product-missing",
    )
    starred: bool = False
    since: str | None = None
    until: str | None = None
    var: list[str] = Field(default_factory=list, max_length=10)
    sort: str | None = None


def _gallery_query(q: AssetQuery) -> QueryDict:
    """The gallery page's query string for the API's query, validated as the page's form does."""
    query = QueryDict(mutable=True)
    for name in ("status", "backend", "model", "tag", "since", "until", "sort"):
        if getattr(q, name):
            query[name] = getattr(q, name)
    if q.flag:
        if q.flag not in gallery.FLAG_FILTERS:
            choices = ", ".join(gallery.FLAG_FILTERS)
            raise Problem(422, "validation", f"flag is one of: {choices}.")
        query["flag"] = q.flag
    for name in ("template", "ref"):
        if getattr(q, name):
            query[name] = str(getattr(q, name))
    if q.version is not None:
        query["version"] = str(q.version)
    if q.starred:
        query["starred"] = "1"
    form = gallery.GalleryFilterForm(query)
    if not form.is_valid():
        detail = "; ".join(
            f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()
        )
        raise Problem(422, "validation", detail)
    for item in q.var:
        name, sep, value = item.partition("=")
        if not sep or not gallery.NAME_RE.match(name.strip()):
            raise Problem(422, "validation", "var is name=value.")
        query.appendlist("var", item)
    return query


def asset_page(caller: Caller, q: AssetQuery, *, base: str) -> dict[str, Any]:
    """One page of the caller's assets, as the list answers it."""
    query = _gallery_query(q)
    scope = gallery.Scope(
        workspace=caller.workspace,
        brand=get_object_or_404(Brand, workspace=caller.workspace, code=q.brand)
        if q.brand
        else None,
        campaign=get_object_or_404(
            Campaign, workspace=caller.workspace, code=q.campaign
        )
        if q.campaign
        else None,
        batch=lookups.batch(caller, q.batch) if q.batch else None,
    )
    filters = gallery.Filters.from_query(query)
    after = ""
    if q.cursor:
        after = _cursor_text(q.cursor)
        if gallery._parse_cursor(after, filters.sort_spec) is None:
            raise Problem(
                422, "validation", "cursor is not a cursor this API handed out."
            )
    result = gallery.gallery_page(
        scope=scope, filters=filters, after=after, size=q.limit
    )
    return {
        "items": [rep.asset(a, base=base) for a in result.assets],
        "next_cursor": _cursor_token(result.next_cursor)
        if result.next_cursor
        else None,
    }


def _cursor_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _cursor_text(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decode("!")  # raises the same 422 as every other list
        raise
