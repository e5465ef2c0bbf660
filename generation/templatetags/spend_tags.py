"""{{ amount|usd }}: money as the spend pages show it ($0.72, $0.015)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from generation.spend import services as spend

register = template.Library()


@register.filter
def usd(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return spend.usd(amount)
