"""Template context campaigns adds to every page (settings.TEMPLATES context_processors)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max
from django.http import HttpRequest

from campaigns.models import Brand


def brand_palette(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}

    def palette_version() -> str:
        # Bumps the palette stylesheet's URL whenever a brand kit changes, so swatches never go
        # stale. A callable: templates call it, so only full pages (base.html) pay for the query,
        # not the htmx partials (progress polling, review actions).
        stamp = Brand.objects.filter(workspace_id=membership.workspace_id).aggregate(
            n=Count("id"), t=Max("updated_at")
        )
        return f"{stamp['n']}-{stamp['t'].timestamp() if stamp['t'] else 0:.0f}"

    return {"palette_version": palette_version}
