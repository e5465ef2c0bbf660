"""Ad results beside approval rates on pages of lower layers (through STUDIO_UI_HOOKS templates)."""

from __future__ import annotations

from typing import Any

from django import template

from results import services

register = template.Library()


@register.simple_tag(takes_context=True)
def version_results(
    context: Any, prompt_template: Any, number: int
) -> dict[str, Any] | None:
    """Impressions, clicks, conversions, CTR and conversion rate of one template version's images;
    one query per page (cached in the render context for every row of the table)."""
    cache = context.render_context.setdefault("results_by_version", {})
    key = prompt_template.pk
    if key not in cache:
        cache[key] = services.results_by_version(prompt_template)
    return cache[key].get(number)


@register.simple_tag
def campaign_rounds(campaign: Any) -> list[services.Round]:
    return services.campaign_rounds(campaign)


@register.filter
def percent(value: float | None, digits: int = 2) -> str:
    """0.01534 -> "1.53 %" (rates are stored as fractions)."""
    if value is None:
        return "—"
    return f"{100 * float(value):.{int(digits)}f} %"


@register.filter
def count(value: int | None) -> str:
    """12345 -> "12,345"."""
    return "—" if value is None else f"{int(value):,}"
