"""Shot coverage: per product and shot, how many approved images exist, and the gaps."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet

from campaigns.models import Brand
from catalog.models import Product, ProductGeneration, Shot
from generation.models import ReviewStatus


@dataclass
class CoverageRow:
    product: Product
    approved: dict[int, int] = field(default_factory=dict)  # shot id -> approved images

    def has(self, shot: Shot) -> bool:
        return self.approved.get(shot.pk, 0) > 0


def approved_counts(brand: Brand) -> dict[int, dict[int, int]]:
    """{product id: {shot id: approved images}}."""
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    for row in (
        ProductGeneration.objects.filter(
            product__brand=brand,
            shot__isnull=False,
            generation__asset__review_status=ReviewStatus.APPROVED,
        )
        .values("product_id", "shot_id")
        .annotate(n=Count("id"))
    ):
        counts[row["product_id"]][row["shot_id"]] = row["n"]
    return counts


def products_missing(brand: Brand, shot: Shot) -> QuerySet[Product]:
    """The brand's products with no approved image for `shot`."""
    covered = ProductGeneration.objects.filter(
        shot=shot, generation__asset__review_status=ReviewStatus.APPROVED
    ).values("product_id")
    return Product.objects.filter(brand=brand).exclude(pk__in=covered).order_by("sku")


def coverage(
    brand: Brand, *, missing: Shot | None = None, query: str = ""
) -> list[CoverageRow]:
    products = (
        products_missing(brand, missing)
        if missing
        else Product.objects.filter(brand=brand)
    )
    if query:
        products = products.filter(sku__icontains=query) | products.filter(
            name__icontains=query
        )
    counts = approved_counts(brand)
    return [
        CoverageRow(product=p, approved=counts.get(p.pk, {}))
        for p in products.order_by("sku").prefetch_related("images__reference")
    ]


def select_products(
    brand: Brand, *, skus: list[str] | None = None, attribute: str = ""
) -> tuple[list[Product], list[str]]:
    """Products by pasted SKU list and/or an attribute filter "key=value"; the unknown SKUs."""
    products = Product.objects.filter(brand=brand).order_by("sku")
    if attribute:
        key, _, value = attribute.partition("=")
        products = products.filter(
            **{f"attributes__{key.strip().lower()}": value.strip()}
        )
    if skus:
        found = {p.sku: p for p in products.filter(sku__in=skus)}
        return [found[s] for s in dict.fromkeys(skus) if s in found], [
            s for s in skus if s not in found
        ]
    return list(products), []
