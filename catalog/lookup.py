"""Finding a workspace and a brand from what a person typed on the command line."""

from __future__ import annotations

from django.db.models import Q

from campaigns.models import Brand
from exports.lookup import LookupFailed, find
from studio.models import Workspace

__all__ = ["LookupFailed", "find_brand", "find_workspace"]


def find_workspace(text: str) -> Workspace:
    value = text.strip()
    workspace = Workspace.objects.filter(Q(slug=value) | Q(name__iexact=value)).first()
    if workspace is None:
        raise LookupFailed(f"No workspace {value!r} (give its slug).")
    return workspace


def find_brand(workspace: Workspace, text: str) -> Brand:
    """A brand by full UUID, 8-hex short id (any unique prefix of 4+) or exact name."""
    brand = find(
        Brand.objects.filter(workspace=workspace), text, kind="Brand", name_field="name"
    )
    assert isinstance(brand, Brand)
    return brand
