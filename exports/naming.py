"""Readable, stable names inside a pack: <preset>/<campaign>_<template>_<values>_<short id>.<ext>.

The short asset id (the first 8 hex digits of Asset.code, as the asset page's title shows) ends
every name, so a file found anywhere (an ad manager, a CMS) leads back to its asset.
"""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify

SHORT_ID_LENGTH = 8


def short_id(code: Any) -> str:
    return str(code).replace("-", "")[:SHORT_ID_LENGTH]


def stem(
    *,
    campaign: str,
    template: str,
    variables: dict[str, Any],
    code: Any,
) -> str:
    parts = [slugify(campaign)[:32], slugify(template)[:32]]
    # Values in the variables' name order, so the same generation always gets the same name.
    parts += [slugify(str(variables[name]))[:24] for name in sorted(variables)]
    prefix = "_".join(p for p in parts if p)[:140].strip("_-")
    return f"{prefix}_{short_id(code)}" if prefix else short_id(code)
