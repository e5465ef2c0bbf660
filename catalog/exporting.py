"""Back to the shop: export by product (<sku>/<shot>_<n>.<ext>) and a results CSV for its CMS.

The ZIP is an ordinary export pack (exports/services.py builds it in a worker), asked for with the
file names chosen here; each image keeps its own size. The results CSV mirrors the import: one
row per product (sku, name, attributes) with, per shot, the approved images' file names in the
pack and, when the files are on S3, their URLs.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.utils.text import slugify

from campaigns.models import Brand
from catalog.models import Product, ProductGeneration, Shot
from exports.models import ExportPack
from exports.render import EXTENSIONS
from exports.services import export_pack_request
from generation.models import ReviewStatus


def approved_by_product(brand: Brand) -> dict[int, list[tuple[Shot, Any]]]:
    """{product id: [(shot, asset), ...]} in shot order, oldest approved first."""
    out: dict[int, list[tuple[Shot, Any]]] = defaultdict(list)
    for link in (
        ProductGeneration.objects.filter(
            product__brand=brand,
            shot__isnull=False,
            generation__asset__review_status=ReviewStatus.APPROVED,
        )
        .select_related("shot", "generation__asset")
        .order_by("shot__position", "shot_id", "generation__asset__created_at", "id")
    ):
        # Never None (shot__isnull=False): the check is for the types.
        if link.shot is not None:
            out[link.product_id].append((link.shot, link.generation.asset))
    return out


def file_names(brand: Brand, products: list[Product]) -> dict[int, str]:
    """{asset pk: "<sku>/<shot>_<n>"}: n counts each product's approved images per shot from 1."""
    by_product = approved_by_product(brand)
    names: dict[int, str] = {}
    for product in products:
        seen: dict[int, int] = defaultdict(int)
        folder = _safe(product.sku)
        for shot, asset in by_product.get(product.pk, []):
            seen[shot.pk] += 1
            names[asset.pk] = f"{folder}/{shot.key}_{seen[shot.pk]}"
    return names


def _safe(sku: str) -> str:
    """A SKU as a folder name: kept as it is unless it holds a path separator or dots only."""
    cleaned = sku.replace("/", "-").replace("\\", "-").strip()
    return cleaned if cleaned.strip(".") else slugify(sku) or "product"


def catalog_export_request(
    *,
    brand: Brand,
    products: list[Product],
    user: Any,
    fmt: str = "jpeg",
    dispatch: bool = True,
) -> ExportPack:
    """Ask for the pack (built by the export worker). Raises ValidationError when nothing is approved."""
    names = file_names(brand, products)
    from django.core.exceptions import ValidationError

    if not names:
        raise ValidationError("Nothing to export: no approved product images yet.")
    from generation.models import Asset

    return export_pack_request(
        workspace=brand.workspace,
        user=user,
        assets=list(Asset.objects.filter(pk__in=names)),
        preset_names=[],
        formats=[fmt],
        names=names,
        title=f"{brand.name} catalog",
        dispatch=dispatch,
    )


def results_csv(*, brand: Brand, fmt: str = "jpeg") -> bytes:
    """One row per product: sku, name, attributes, then per shot the files (and URLs on S3)."""
    products = list(Product.objects.filter(brand=brand).order_by("sku"))
    shots = list(Shot.objects.filter(brand=brand))
    by_product = approved_by_product(brand)
    names = file_names(brand, products)
    attributes = sorted({k for p in products for k in (p.attributes or {})})
    on_s3 = bool(getattr(settings, "AWS_STORAGE_BUCKET_NAME", ""))
    header = ["sku", "name", *attributes]
    for shot in shots:
        header.append(f"{shot.key}_files")
        if on_s3:
            header.append(f"{shot.key}_urls")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    ext = EXTENSIONS.get(fmt, "jpg")
    for product in products:
        row = [
            product.sku,
            product.name,
            *((product.attributes or {}).get(a, "") for a in attributes),
        ]
        for shot in shots:
            assets = [a for s, a in by_product.get(product.pk, []) if s.pk == shot.pk]
            row.append("|".join(f"{names[a.pk]}.{ext}" for a in assets))
            if on_s3:
                row.append("|".join(a.file.url for a in assets))
        writer.writerow(row)
    return ("\ufeff" + out.getvalue()).encode()
