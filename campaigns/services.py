"""State changes for brands and campaigns (references and templates have their own modules)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from campaigns.models import Brand, Campaign, ReferenceImage
from studio.models import Workspace


class BrandNameTaken(Exception):
    pass


def brand_create(*, workspace: Workspace, user: User, fields: dict[str, Any]) -> Brand:
    """Create a brand kit. Raises BrandNameTaken when the workspace already has that name."""
    try:
        with transaction.atomic():
            return Brand.objects.create(
                workspace=workspace, created_by=user, **_brand_fields(fields)
            )
    except IntegrityError as exc:
        raise BrandNameTaken(fields["name"]) from exc


def brand_update(*, brand: Brand, fields: dict[str, Any]) -> Brand:
    """Change the kit fields given in `fields`; others keep their value. The logo is always
    set to `fields["logo"]` (absent or None clears it)."""
    values = _brand_fields(fields)
    logo = fields.get("logo")
    if logo is not None and (logo.brand_id != brand.pk or logo.role != "logo"):
        raise ValueError("The logo must be one of this brand's logo references.")
    values["logo"] = logo
    try:
        with transaction.atomic():
            for name, value in values.items():
                setattr(brand, name, value)
            brand.save()
    except IntegrityError as exc:
        raise BrandNameTaken(brand.name) from exc
    return brand


def _brand_fields(fields: dict[str, Any]) -> dict[str, Any]:
    keys = [
        "name",
        "description",
        "palette",
        "fonts",
        "typography_hints",
        "tone_of_voice",
        "words_to_use",
        "words_to_avoid",
        "default_formats",
    ]
    return {key: fields[key] for key in keys if key in fields}


def brand_delete(*, brand: Brand) -> None:
    """Delete a brand with its references (files included), campaigns and templates."""
    from campaigns.references import reference_files_delete

    names = [
        name
        for pair in ReferenceImage.objects.filter(brand=brand).values_list(
            "file", "thumbnail"
        )
        for name in pair
    ]
    with transaction.atomic():
        brand.delete()
        # Files go after the rows: a failed delete must not leave rows pointing at missing files.
        transaction.on_commit(lambda: reference_files_delete(names))


def campaign_create(*, brand: Brand, user: User, fields: dict[str, Any]) -> Campaign:
    return Campaign.objects.create(
        workspace=brand.workspace, brand=brand, created_by=user, **fields
    )


def campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.refresh_from_db()
    return campaign
