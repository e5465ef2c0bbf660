"""Template helpers every page uses: role checks and the studio's one date format.

Dates: `{{ value|day }}` "3 Dec 2026"; `{{ value|stamp }}` "3 Dec 2026, 07:11"; `{{ value|when }}`
relative where recency matters ("5 min ago", "in 3 min", "yesterday 07:11"), the exact time on hover,
and the plain stamp after a week. Each renders a <time> element with the ISO value.

Roles: `{% if current_membership|can:"batch.create" %}` reads studio/permissions.py, the table the
views' checks read.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

from studio import permissions

register = template.Library()

DAY = "j M Y"
STAMP = "j M Y, H:i"
RECENT = dt.timedelta(days=7)


@register.filter
def can(membership: object, action: str) -> bool:
    return permissions.can(membership, action)  # type: ignore[arg-type]


def _local(value: dt.datetime) -> dt.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def _iso(value: dt.datetime) -> str:
    # To the minute, like what is shown: two answers made a moment apart stay byte-identical (the
    # invitation page must not tell whether an account exists by its timing).
    return value.isoformat(timespec="minutes")


def _exact(value: dt.datetime) -> str:
    local = _local(value)
    zone = local.tzname() or ""
    return f"{date_format(local, STAMP)} {zone}".strip()


@register.filter
def day(value: dt.date | dt.datetime | None) -> str:
    if not value:
        return ""
    if isinstance(value, dt.datetime):
        value = _local(value)
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            _iso(value),
            _exact(value),
            date_format(value, DAY),
        )
    return format_html(
        '<time datetime="{}">{}</time>', value.isoformat(), date_format(value, DAY)
    )


@register.filter
def stamp(value: dt.datetime | None) -> str:
    if not value:
        return ""
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        _iso(value),
        _exact(value),
        date_format(_local(value), STAMP),
    )


def relative(value: dt.datetime, now: dt.datetime | None = None) -> str | None:
    """'5 min ago' / 'in 3 min' / 'yesterday 07:11', or None when it is not recent."""
    now = now or timezone.now()
    delta = now - value
    future = delta.total_seconds() < 0
    seconds = abs(delta.total_seconds())
    if seconds >= RECENT.total_seconds():
        return None
    if seconds < 45:
        return "in a moment" if future else "just now"
    if seconds < 3600:
        text = f"{round(seconds / 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        local, today = _local(value), _local(now).date()
        if not future and local.date() == today - dt.timedelta(days=1):
            return f"yesterday {date_format(local, 'H:i')}"
        return date_format(local, "D j M, H:i")
    return f"in {text}" if future else f"{text} ago"


@register.filter
def when(value: dt.datetime | None) -> str:
    if not value:
        return ""
    shown = relative(value) or date_format(_local(value), STAMP)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        _exact(value),
        shown,
    )
