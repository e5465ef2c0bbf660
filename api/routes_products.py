"""Products of the catalog (issue 14): each with its reference images and its approved images per shot.

A shop's pipeline reads these to write results back to its CMS: `GET /api/v1/products?brand=…&sku=…`
and `GET /api/v1/products/{id}`. Read-only; any token of the workspace (viewer and up).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema
from pydantic import Field

from api import representations as rep
from api.auth import ApiRequest
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, page
from api.schemas import ERRORS, AssetBrief, PageOut
from campaigns.models import Brand
from catalog.exporting import approved_by_product
from catalog.models import Product

router = Router(tags=["products"])


class ProductImageOut(Schema):
    role: str
    reference: UUID | None
    state: str


class ApprovedOut(Schema):
    shot: str
    asset: AssetBrief


class ProductOut(Schema):
    id: UUID
    brand: UUID
    sku: str
    name: str
    attributes: dict[str, Any]
    images: list[ProductImageOut]
    approved: list[ApprovedOut]


class ProductPage(PageOut):
    items: list[ProductOut]


class ProductQuery(Schema):
    brand: UUID | None = None
    sku: str | None = Field(default=None, max_length=100)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


def _render(product: Product, approved: list[Any], base: str) -> dict[str, Any]:
    return {
        "id": str(product.code),
        "brand": str(product.brand.code),
        "sku": product.sku,
        "name": product.name,
        "attributes": product.attributes or {},
        "images": [
            {
                "role": image.role,
                "reference": str(image.reference.code) if image.reference else None,
                "state": image.state,
            }
            for image in product.images.all()
        ],
        "approved": [
            {"shot": shot.key, "asset": rep.asset_brief(asset, base=base)}
            for shot, asset in approved
        ],
    }


def _queryset(request: ApiRequest) -> QuerySet[Product]:
    return (
        Product.objects.filter(workspace=request.auth.workspace)
        .select_related("brand")
        .prefetch_related("images__reference")
    )


@router.get("/products", response={200: ProductPage, **ERRORS}, summary="List products")
def product_list(request: ApiRequest, q: Query[ProductQuery]) -> dict:
    qs = _queryset(request)
    if q.brand is not None:
        brand = get_object_or_404(
            Brand,
            workspace=request.auth.workspace,
            code=q.brand,
        )
        qs = qs.filter(brand=brand)
    if q.sku:
        qs = qs.filter(sku=q.sku)
    base = rep.base_url(request)
    cache: dict[int, dict[int, list[Any]]] = {}

    def render(product: Product) -> dict[str, Any]:
        if product.brand_id not in cache:
            cache[product.brand_id] = approved_by_product(product.brand)
        return _render(product, cache[product.brand_id].get(product.pk, []), base)

    return page(qs, cursor=q.cursor, limit=q.limit, render=render)


@router.get(
    "/products/{code}", response={200: ProductOut, **ERRORS}, summary="One product"
)
def product_detail(request: ApiRequest, code: UUID) -> dict:
    product = get_object_or_404(_queryset(request), code=code)
    approved = approved_by_product(product.brand).get(product.pk, [])
    return _render(product, approved, rep.base_url(request))
