"""Batches over products: one row per product, with the product's own references and fields.

The batch itself is an ordinary rows-mode batch (generation.batches.services.batch_create): the
1,000 cap, the estimate and the campaign budget hold as for every batch. Each row carries the
product's ready images as its own references (Row.references, cut to each model's maximum by the
planner, which says so in the preview) and its fields as template variables ({product.name},
{product.colour}, ...). After the batch is stored, each generation is linked to its product (and
shot), so coverage and export by product know whose image it is.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from django.db import transaction

from campaigns.models import Campaign, TemplateVersion
from catalog.models import Product, ProductGeneration, ProductImage, Shot
from generation.batches.common import BatchRefused
from generation.batches.preview import BatchPreview, batch_preview
from generation.batches.services import batch_create
from generation.batches.spec import (
    FIELD_ROWS,
    ROWS,
    BatchSpec,
    Row,
    Seeds,
    Size,
    Target,
)
from generation.models import Batch, Generation


def product_references(products: Sequence[Product]) -> dict[int, tuple[str, ...]]:
    """Each product's ready images as library codes, in the CSV's column order."""
    refs: dict[int, list[str]] = {p.pk: [] for p in products}
    for image in (
        ProductImage.objects.filter(
            product__in=products,
            state=ProductImage.State.READY,
            reference__isnull=False,
        )
        .select_related("reference")
        .order_by("position", "id")
    ):
        refs[image.product_id].append(str(image.reference.code))  # type: ignore[union-attr]
    return {pk: tuple(codes) for pk, codes in refs.items()}


def products_spec(
    *,
    products: Sequence[Product],
    version: TemplateVersion,
    targets: Sequence[Target],
    sizes: Sequence[Size],
    seeds: Seeds,
    values: Mapping[str, str] | None = None,
    references: Mapping[str, str] | None = None,
) -> BatchSpec:
    """The rows-mode spec: product fields fill {product.*}, `values` the template's other variables."""
    values = values or {}
    refs = product_references(products)
    rows = []
    for index, product in enumerate(products, start=1):
        own = product.template_values()
        rows.append(
            Row(
                line=index,
                values={
                    name: own.get(name, "")
                    if name.startswith("product.")
                    else values.get(name, "")
                    for name in version.variables
                },
                references=refs.get(product.pk, ()),
                label=product.sku,
            )
        )
    return BatchSpec(
        mode=ROWS,
        rows=tuple(rows),
        seeds=seeds,
        targets=tuple(targets),
        sizes=tuple(sizes),
        references=dict(references or {}),
    )


def _without_images(products: Sequence[Product], spec: BatchSpec) -> list[str]:
    return [row.label for row in spec.rows if not row.references]


def catalog_batch_preview(
    *, campaign: Campaign, version: TemplateVersion, spec: BatchSpec
) -> BatchPreview:
    preview = batch_preview(campaign=campaign, version=version, spec=spec)
    if missing := [row.label for row in spec.rows if not row.references]:
        preview.errors.setdefault(FIELD_ROWS, []).append(_no_images_message(missing))
    return preview


def _no_images_message(skus: list[str]) -> str:
    shown = ", ".join(skus[:10]) + (
        f" and {len(skus) - 10} more" if len(skus) > 10 else ""
    )
    return f"No reference image ready for {shown}: import or fix their images first."


def catalog_batch_create(
    *,
    campaign: Campaign,
    version: TemplateVersion,
    products: Sequence[Product],
    spec: BatchSpec,
    user: Any,
    shot: Shot | None = None,
    name: str = "",
    token: UUID | None = None,
) -> Batch:
    """Store and dispatch the batch and link every generation to its product. Raises BatchRefused."""
    if missing := [row.label for row in spec.rows if not row.references]:
        raise BatchRefused({FIELD_ROWS: [_no_images_message(missing)]})
    with transaction.atomic():
        batch = batch_create(
            campaign=campaign,
            version=version,
            spec=spec,
            user=user,
            name=name,
            token=token,
        )
        if ProductGeneration.objects.filter(generation__batch=batch).exists():
            return batch  # a double click answered with the first batch
        # Generations are stored in plan order: rows × seeds × targets × sizes.
        per_row = spec.seeds.per_combination * len(spec.targets) * len(spec.sizes)
        generation_ids = list(
            Generation.objects.filter(batch=batch)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if len(generation_ids) != per_row * len(products):
            raise RuntimeError("the batch's generations do not match its products")
        ProductGeneration.objects.bulk_create(
            ProductGeneration(
                workspace_id=batch.workspace_id,
                product=products[index // per_row],
                shot=shot,
                generation_id=generation_id,
            )
            for index, generation_id in enumerate(generation_ids)
        )
    return batch


def other_variables(shot: Shot) -> list[str]:
    """The shot template's variables a product does not fill (one value each for the batch)."""
    version = shot.template.latest_version if shot.template else None
    return [
        n
        for n in (version.variables if version else [])
        if not n.startswith("product.")
    ]


def gap_products(
    *, brand: Any, shot: Shot, skus: list[str] | None = None, attribute: str = ""
) -> list[Product]:
    """The products missing `shot`, narrowed by a pasted SKU list and/or "key=value"."""
    from catalog.coverage import products_missing, select_products

    missing = set(products_missing(brand, shot).values_list("pk", flat=True))
    chosen, _unknown = select_products(brand, skus=skus, attribute=attribute)
    return [p for p in chosen if p.pk in missing]


def catalog_gap_batch_create(
    *,
    campaign: Campaign,
    shot: Shot,
    target: Target,
    per_product: int,
    user: Any,
    skus: list[str] | None = None,
    attribute: str = "",
    values: Mapping[str, str] | None = None,
) -> Batch:
    """One click: a batch of the shot's template for every product missing it. Raises BatchRefused."""
    template = shot.template
    version = template.latest_version if template else None
    if version is None:
        raise BatchRefused(
            {"shot": [f"The shot “{shot.name}” has no template to batch with."]}
        )
    products = gap_products(
        brand=campaign.brand, shot=shot, skus=skus, attribute=attribute
    )
    if not products:
        raise BatchRefused({"shot": [f"No product is missing “{shot.name}”."]})
    spec = products_spec(
        products=products,
        version=version,
        targets=[target],
        sizes=[Size(shot.width, shot.height)],
        seeds=Seeds(count=per_product, rng_seed=secrets.randbelow(2**31)),
        values=values,
    )
    return catalog_batch_create(
        campaign=campaign,
        version=version,
        products=products,
        spec=spec,
        user=user,
        shot=shot,
        name=f"{shot.name}: gaps for {len(products)} product"
        + ("s" if len(products) != 1 else ""),
    )
