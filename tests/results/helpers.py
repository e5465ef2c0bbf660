"""A factorial batch with an image per variant, and ad-platform CSVs written from known counts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any
from unittest import mock

from django.utils import timezone

from generation.batches.services import batch_create
from generation.models import Asset, Generation
from tests.generation.batch_helpers import matrix_spec


def factorial_batch(
    campaign: Any,
    version: Any,
    user: Any,
    *,
    headlines: Sequence[str] = ("Warm up", "Half price"),
    scenes: Sequence[str] = ("on marble", "in a cafe"),
    seeds: Sequence[int] = (11, 22),
) -> tuple[Any, list[Asset]]:
    """A dispatched preview batch (headline × scene × seed) whose every generation has an asset."""
    from generation.batches.spec import FIXED, Seeds

    with mock.patch("generation.tasks.wake_dispatcher"):
        batch = batch_create(
            campaign=campaign,
            version=version,
            spec=matrix_spec(
                headlines=headlines,
                scenes=scenes,
                seeds=Seeds(FIXED, values=tuple(seeds)),
            ),
            user=user,
        )
    assets = []
    for generation in Generation.objects.filter(batch=batch).order_by("id"):
        Generation.objects.filter(pk=generation.pk).update(
            state="succeeded", finished_at=timezone.now()
        )
        assets.append(_asset_for(generation))
    return batch, assets


def _asset_for(generation: Generation) -> Asset:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tests.factories import image_bytes

    base = f"generations/{generation.workspace.code}/{generation.code}"
    # A small real image, coloured by the variant's headline, so pages show thumbnails.
    color = (
        (190, 90, 40)
        if generation.variables.get("headline") == "Warm up"
        else (60, 90, 160)
    )
    content = image_bytes(size=(96, 96), color=color)
    file_name = default_storage.save(f"{base}/image.png", ContentFile(content))
    thumb_name = default_storage.save(f"{base}/thumb.png", ContentFile(content))
    return Asset.objects.create(
        workspace=generation.workspace,
        generation=generation,
        campaign_id=generation.campaign_id,
        batch_id=generation.batch_id,
        file=file_name,
        thumbnail=thumb_name,
        width=generation.width,
        height=generation.height,
        format="png",
        content_type="image/png",
        byte_size=1000,
        sha256=f"{generation.pk:064x}",
    )


def export_name(asset: Asset, preset: str = "square") -> str:
    """What an asset pack names the file (its short id travels in the ad name)."""
    return f"autumn-launch_{str(asset.code)[:8]}_{preset}.jpg"


def meta_csv(
    rows: Iterable[tuple[str, int, int, int]], *, period: str = "2026-11-01"
) -> bytes:
    """Meta Ads Manager's export: UTF-8 with a BOM, its column names, a results column."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "Reporting starts",
            "Reporting ends",
            "Ad name",
            "Ad set name",
            "Impressions",
            "Reach",
            "Link clicks",
            "Results",
            "Result indicator",
            "Amount spent (USD)",
        ]
    )
    for name, impressions, clicks, results in rows:
        writer.writerow(
            [
                period,
                "2026-11-30",
                name,
                "Broad",
                f"{impressions:,}",
                impressions // 2,
                clicks,
                results,
                "actions:purchase",
                f"{impressions / 1000 * 7.5:.2f}",
            ]
        )
    return ("\ufeff" + out.getvalue()).encode()


def google_csv(rows: Iterable[tuple[str, int, int, int]]) -> bytes:
    """Google Ads' report: a title and a date range above the header, "Impr.", totals rows."""
    out = io.StringIO()
    out.write("Ad report\n")
    out.write('"November 1, 2026 - November 30, 2026"\n')
    writer = csv.writer(out)
    writer.writerow(
        [
            "Ad status",
            "Ad name",
            "Campaign",
            "Ad group",
            "Clicks",
            "Impr.",
            "CTR",
            "Currency code",
            "Cost",
            "Conversions",
        ]
    )
    total_i = total_c = 0
    for name, impressions, clicks, conversions in rows:
        total_i += impressions
        total_c += clicks
        writer.writerow(
            [
                "Enabled",
                name,
                "Autumn",
                "Group 1",
                f"{clicks:,}",
                f"{impressions:,}",
                f"{clicks / impressions:.2%}" if impressions else "0.00%",
                "USD",
                f"{impressions / 1000 * 3:.2f}",
                f"{conversions:.2f}",
            ]
        )
    writer.writerow(["Total: Account", "", "", "", total_c, total_i, "", "USD", "", ""])
    return out.getvalue().encode()
