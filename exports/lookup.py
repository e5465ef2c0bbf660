"""Finding a campaign, batch or asset from what a person copied out of the studio.

The studio shows codes in three shapes: the full UUID in every address (/campaigns/<uuid>/), the
first 8 hex digits as a short id (an asset page's title "Image d1016f93", "Batch 1a2b3c4d", a
pack's file names) and names (campaigns, named batches). All are accepted, within one workspace:
a full UUID or an address containing one, a unique hex prefix of at least 4 digits (dashes
optional), a downloaded original's file name (the generation's code), or an exact name.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.db.models import CharField, Model, Q, QuerySet, Value
from django.db.models.functions import Cast, Replace

_UUID = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)
_HEX = re.compile(r"^[0-9a-f-]{4,36}$", re.IGNORECASE)
_PREFIXES = re.compile(r"^(image|batch|asset|campaign)\s+", re.IGNORECASE)


class LookupFailed(ValueError):
    pass


def find(
    queryset: QuerySet[Any],
    text: str,
    *,
    kind: str,
    code_fields: tuple[str, ...] = ("code",),
    name_field: str | None = None,
) -> Model:
    """The one object `text` names, or LookupFailed with a one-line reason."""
    raw = text.strip()
    value = _PREFIXES.sub("", raw).strip()
    full = _UUID.search(value)
    if full:
        uuid = UUID(full[0])
        match = queryset.filter(_any(code_fields, uuid)).first()
        if match is not None:
            return match
    stem = value.rsplit("/", 1)[-1].split(".", 1)[0]
    if _HEX.match(stem) and not full:
        prefix = stem.replace("-", "").lower()
        matches = _by_prefix(queryset, code_fields, prefix)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise LookupFailed(
                f"{kind} {raw!r} is ambiguous ({len(matches)} match): give more digits."
            )
    if name_field:
        named = list(queryset.filter(**{f"{name_field}__iexact": value})[:2])
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise LookupFailed(f"{kind} {raw!r}: several have that name; use its code.")
    raise LookupFailed(f"No {kind.lower()} {raw!r} in this workspace.")


def _any(fields: tuple[str, ...], uuid: UUID) -> Q:
    query = Q()
    for field in fields:
        query |= Q(**{field: uuid})
    return query


def _by_prefix(
    queryset: QuerySet[Any], fields: tuple[str, ...], prefix: str
) -> list[Model]:
    found: dict[int, Model] = {}
    for field in fields:
        # PostgreSQL casts a uuid to its dashed text; compare without the dashes.
        annotated = queryset.annotate(
            _hex=Replace(Cast(field, CharField()), Value("-"), Value(""))
        ).filter(_hex__startswith=prefix)
        for obj in annotated[:3]:
            found.setdefault(obj.pk, obj)
    return list(found.values())
