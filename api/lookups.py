"""The caller's objects by code, in the caller's workspace only: another workspace's object is a
404 (never a hint that it exists), as on the studio's pages."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.shortcuts import get_object_or_404

from api.problems import Problem
from api.tokens import Caller
from campaigns.models import ReferenceImage
from generation.models import Asset, Batch, Generation


def generations() -> Any:
    """Generations with what their representation shows."""
    return Generation.objects.select_related(
        "asset", "campaign", "batch", "template_version"
    )


def references(caller: Caller, codes: list[UUID]) -> dict[str, ReferenceImage]:
    """The references named by `codes`, by code; a 404 problem names the first missing one."""
    found = {
        str(r.code): r
        for r in ReferenceImage.objects.filter(
            workspace=caller.workspace, code__in=codes
        )
    }
    for code in codes:
        if str(code) not in found:
            raise Problem(404, "not_found", f"No reference {code} here.")
    return found


def batch(caller: Caller, code: UUID) -> Batch:
    return get_object_or_404(
        Batch.objects.select_related("campaign", "template_version"),
        workspace=caller.workspace,
        code=code,
    )


def asset(caller: Caller, code: UUID) -> Asset:
    return get_object_or_404(
        Asset.objects.select_related("generation", "campaign", "batch", "brand_check"),
        workspace=caller.workspace,
        code=code,
    )
