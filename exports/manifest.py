"""What a pack says about its images: the per-asset record (also shown to outside reviewers on a
share page), who approved each asset, and the pack's manifest.json, manifest.csv and README.txt."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from checks.models import scores_of
from exports import naming
from exports.models import ExportPack
from exports.presets import Preset
from generation.models import Asset, ReviewEvent, ReviewStatus

MANIFEST_FIELDS = [
    "file", "asset_id", "short_id", "preset", "preset_width", "preset_height", "width",
    "height", "format", "bytes", "sha256", "too_small", "scale", "campaign", "brand",
    "template", "template_version", "prompt", "variables", "seed", "model", "backend",
    "cost", "approvals", "focal_x", "focal_y", "review_status",
    # The asset's brand check (checks app; empty scores: not applicable or not checked yet).
    "check_state", "palette_score", "text_score", "logo_score", "product_score",
    "channel_score", "check_flags", "needs_review",
]  # fmt: skip


def described_assets(workspace_id: int, asset_ids: list[int]) -> list[Asset]:
    """The assets `asset_record` describes, in the order of `asset_ids`, with everything it reads
    in the same query (brand_check too: scores_of reads the reverse one-to-one). Assets deleted
    since the ids were taken are left out."""
    by_id = {
        a.pk: a
        for a in Asset.objects.filter(
            workspace_id=workspace_id, pk__in=asset_ids
        ).select_related(
            "generation__template_version__template",
            "generation__brand",
            "campaign__brand",
            "brand_check",
        )
    }
    return [by_id[i] for i in asset_ids if i in by_id]


def asset_record(
    asset: Asset, approvals: dict[int, list[dict[str, str]]]
) -> dict[str, Any]:
    """The manifest's fields of one asset (the same for each of its renditions); also what an
    outside reviewer sees next to the image."""
    g = asset.generation
    version = g.template_version
    brand = g.brand or (asset.campaign.brand if asset.campaign else None)
    return {
        "asset_id": str(asset.code),
        "short_id": naming.short_id(asset.code),
        "campaign": asset.campaign.name if asset.campaign else "",
        "brand": brand.name if brand else "",
        "template": version.template.name if version else "",
        "template_version": version.number if version else None,
        "prompt": g.prompt,
        "variables": g.variables or {},
        "seed": g.seed,
        "model": g.model,
        "backend": g.backend,
        "cost": str(
            g.actual_cost
            if g.actual_cost is not None
            else g.estimated_cost or Decimal(0)
        ),
        "approvals": approvals.get(asset.pk, []),
        "focal_x": asset.focal_x if asset.focal_x is not None else 0.5,
        "focal_y": asset.focal_y if asset.focal_y is not None else 0.5,
        "review_status": asset.review_status,
        "brand_check": scores_of(asset),
    }


def approvals_for(asset_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    """Who approved each asset and when (every approval, oldest first)."""
    result: dict[int, list[dict[str, str]]] = {}
    events = (
        ReviewEvent.objects.filter(
            asset_id__in=asset_ids, to_status=ReviewStatus.APPROVED
        )
        .select_related("actor")
        .order_by("created_at", "id")
    )
    for event in events:
        result.setdefault(event.asset_id, []).append(
            {
                "approver": event.actor.get_username() if event.actor else "",
                "at": event.created_at.isoformat(),
            }
        )
    return result


def manifest_json(
    pack: ExportPack,
    presets: list[Preset],
    rows: list[dict[str, Any]],
    flagged: list[dict[str, Any]],
    max_upscale: float,
) -> dict[str, Any]:
    return {
        "pack": str(pack.code),
        "title": pack.title,
        "workspace": pack.workspace.slug,
        "created_at": pack.created_at.isoformat(),
        "created_by": pack.created_by.get_username() if pack.created_by else None,
        "generator": "Flux Studio",
        "digital_source_type": "trainedAlgorithmicMedia",
        "max_upscale": max_upscale,
        "presets": [p.as_json() for p in presets],
        "formats": pack.formats,
        "assets": len({r["asset_id"] for r in rows}),
        "flagged": flagged,
        "renditions": rows,
    }


def manifest_csv(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["variables"] = json.dumps(
            row["variables"], ensure_ascii=False, sort_keys=True
        )
        flat["approvals"] = "; ".join(
            f"{a['approver']} {a['at']}" for a in row["approvals"]
        )
        check = row["brand_check"]
        flat.update(
            check_state=check["state"],
            palette_score=check["palette"],
            text_score=check["text"],
            logo_score=check["logo"],
            product_score=check["product"],
            channel_score=check["channels"],
            check_flags=" ".join(check["flags"]),
            needs_review=check["needs_review"],
        )
        writer.writerow(flat)
    return buffer.getvalue().encode("utf-8")


def readme(
    pack: ExportPack,
    presets: list[Preset],
    rows: list[dict[str, Any]],
    flagged: list[dict[str, Any]],
    max_upscale: float,
) -> bytes:
    assets = len({r["asset_id"] for r in rows})
    lines = [
        f"{pack.title}",
        f"Asset pack {pack.code} made with Flux Studio on {pack.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" by {pack.created_by.get_username()}." if pack.created_by else "."),
        "",
        f"{assets} image(s) x {len(presets)} preset(s) x {len(pack.formats)} format(s) = {len(rows)} files.",
        "Folders, one per preset (cropped around each image's focal point, resized with Lanczos):",
        *(f"  {p.key}/  {p.label}, {p.width}x{p.height}" for p in presets),
        f"Formats: {', '.join(pack.formats)}.",
        "File names: <campaign>_<template>_<variable values>_<short asset id>.<ext>; the short id is",
        "the first 8 hex digits of the asset id in the manifest and in the studio's addresses.",
        "",
        "manifest.json and manifest.csv list every file: asset id, preset, size, format, bytes,",
        "sha256, campaign, brand, template and version, prompt, variables, seed, model, backend,",
        "cost, approvals (who, when) and focal point, and the brand check's scores (0..1, 1 best;",
        "empty where a check did not apply or has not run) and flags.",
        "",
        "Every image is AI-generated and says so in its XMP metadata (IPTC Digital Source Type",
        "trainedAlgorithmicMedia, the model and the studio named).",
    ]
    if flagged:
        lines += [
            "",
            f"TOO SMALL: {len(flagged)} rendition(s) would have needed more than {max_upscale:g}x",
            "upscaling; they are exported smaller than the preset (same aspect ratio):",
            *(
                f"  {f['preset']}/ ...{f['asset']}  needed {f['needed']}x"
                for f in flagged
            ),
        ]
    return ("\n".join(lines) + "\n").encode("utf-8")
