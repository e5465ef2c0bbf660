"""Running the brand checks on a stored asset and keeping the result (AssetCheck)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.files.storage import default_storage

from campaigns.models import ReferenceImage, ReferenceRole
from checks.measure import Inputs, Reference, measure
from checks.models import AssetCheck, BrandCheckPolicy, CheckState
from checks.pixels import Picture, decode
from generation.models import Asset, Generation

log = logging.getLogger(__name__)

ROLES = (ReferenceRole.LOGO, ReferenceRole.PRODUCT)


def _read(name: str | None) -> bytes:
    if not name:  # a FieldFile with no file: nothing to check against
        raise FileNotFoundError("no file is stored for this record")
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def _references(generation: Generation) -> list[Reference]:
    """The logo and product references the request sent (library images and command-line files)."""
    wanted = [r for r in generation.references if r.get("role") in ROLES]
    codes = [r["code"] for r in wanted if r.get("code")]
    library = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=generation.workspace_id, code__in=codes
        )
    }
    out = []
    for item in wanted:
        try:
            if item.get("code"):
                ref = library.get(str(item["code"]))
                if ref is None:
                    continue  # deleted from the library since
                picture, label = decode(_read(ref.file.name)), str(ref)
            elif item.get("file"):
                picture, label = (
                    decode(_read(item["file"])),
                    item["file"].rsplit("/", 1)[-1],
                )
            else:
                continue
        except OSError as exc:
            log.warning("reference %s unreadable for checks: %s", item, exc)
            continue
        out.append(
            Reference(
                role=item["role"],
                picture=picture,
                label=label,
                code=str(item.get("code", "")),
            )
        )
    return out


def inputs_for(generation: Generation, policy: BrandCheckPolicy) -> Inputs:
    brand = generation.brand
    formats = list(brand.default_formats) if brand is not None else []
    if generation.campaign is not None:
        formats += [key for key in generation.campaign.channels if key not in formats]
    return Inputs(
        palette=list(brand.palette) if brand is not None else [],
        prompt=generation.prompt,
        references=_references(generation),
        formats=formats,
        tolerance=policy.delta_e,
    )


def flags_for(result: dict[str, Any], policy: BrandCheckPolicy) -> dict[str, bool]:
    """Which flags the measured scores raise under the brand's thresholds."""

    def under(key: str, minimum: float) -> bool:
        part = result.get(key)
        if not part:
            return False
        return part.get("score") is not None and part["score"] < minimum

    flags = {
        "off_palette": under("palette", policy.palette_min),
        "text_mismatch": under("text", policy.text_min),
        "logo_missing": under("logo", policy.logo_min),
        "product_missing": under("product", policy.product_min),
        "too_small": bool((result.get("channels") or {}).get("too_small")),
    }
    # Too small for a preset is a fact about the size, shown but not a reason to review the image.
    flags["needs_review"] = any(v for k, v in flags.items() if k != "too_small")
    return flags


def check_picture(
    picture: Picture, inputs: Inputs, policy: BrandCheckPolicy
) -> dict[str, Any]:
    result = measure(picture, inputs)
    result["flags"] = flags_for(result, policy)
    result["thresholds"] = {
        "palette_min": policy.palette_min,
        "text_min": policy.text_min,
        "logo_min": policy.logo_min,
        "product_min": policy.product_min,
        "delta_e": policy.delta_e,
    }
    return result


def asset_check_run(*, asset_id: int, force: bool = False) -> AssetCheck | None:
    """Check one asset's pixels and store the result. Safe to run twice: the same file is not
    checked again (unless `force`), a rerun overwrites the one row. None: the asset is gone."""
    asset = (
        Asset.objects.select_related(
            "generation", "generation__brand", "generation__campaign"
        )
        .filter(pk=asset_id)
        .first()
    )
    if asset is None:
        return None
    if not force:
        done = AssetCheck.objects.filter(
            asset=asset, sha256=asset.sha256, state=CheckState.DONE
        ).first()
        if done is not None:
            return done
    generation = asset.generation
    policy = BrandCheckPolicy.for_brand(generation.brand)
    started = time.perf_counter()
    fields: dict[str, Any]
    try:
        picture = decode(_read(asset.file.name))
        result = check_picture(picture, inputs_for(generation, policy), policy)
    except Exception as exc:  # a check that cannot run must not hide the asset or loop
        log.exception("brand check of asset %s failed", asset.pk)
        fields = {
            "state": CheckState.FAILED,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
        }
        fields.update(dict.fromkeys(_SCORES, None))
        fields.update(dict.fromkeys(_FLAGS, False))
        fields["details"] = {}
    else:
        fields = {
            "state": CheckState.DONE,
            "error": "",
            "details": result,
            **{f"{key}_score": (result.get(key) or {}).get("score") for key in _PARTS},
            "channel_score": (result.get("channels") or {}).get("score"),
            **result["flags"],
        }
    fields["duration_ms"] = round((time.perf_counter() - started) * 1000)
    check, _created = AssetCheck.objects.update_or_create(
        asset=asset,
        defaults={"workspace_id": asset.workspace_id, "sha256": asset.sha256, **fields},
    )
    return check


_PARTS = ("palette", "text", "logo", "product")
_SCORES = (
    "palette_score",
    "text_score",
    "logo_score",
    "product_score",
    "channel_score",
)
_FLAGS = (
    "off_palette",
    "text_mismatch",
    "logo_missing",
    "product_missing",
    "too_small",
    "needs_review",
)
