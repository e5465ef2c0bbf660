"""Cursor pagination for every list: newest first, keyset on (created_at, id).

The cursor is opaque to clients (base64 of the last row's created_at and id), stable while rows
are added, and a mangled cursor is a 422, never a silently different page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from api.problems import Problem

M = TypeVar("M", bound=Model)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode(created_at: dt.datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}~{pk}".encode()).decode()


def decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        stamp, _, pk = text.rpartition("~")
        value = dt.datetime.fromisoformat(stamp)
        if value.tzinfo is None:
            raise ValueError
        return value, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(
            422, "validation", "cursor is not a cursor this API handed out."
        ) from None


def page[M: Model](
    queryset: QuerySet[M],
    *,
    cursor: str | None,
    limit: int,
    render: Callable[[M], dict[str, Any]],
    field: str = "created_at",
) -> dict[str, Any]:
    queryset = queryset.order_by(f"-{field}", "-pk")
    if cursor:
        value, pk = decode(cursor)
        queryset = queryset.filter(
            Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": pk})
        )
    rows = list(queryset[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [render(row) for row in rows],
        "next_cursor": encode(getattr(rows[-1], field), rows[-1].pk)
        if more and rows
        else None,
    }
