"""{% home_dashboard %}: the home page's "what needs the team" panels (generation/dashboard.py)."""

from __future__ import annotations

from typing import Any

from django import template

from generation.dashboard import dashboard_for

register = template.Library()


@register.inclusion_tag(
    "generation/hooks/home_dashboard_panels.html", takes_context=True
)
def home_dashboard(context: Any) -> dict[str, Any]:
    workspace = context.get("current_workspace")
    return {
        "dash": dashboard_for(workspace) if workspace is not None else None,
        "current_membership": context.get("current_membership"),
    }
