"""Fetching a product image given as an https URL (a worker's job, never the request's)."""

from __future__ import annotations

import hashlib
import logging

import httpx
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from campaigns.images import ImageRejected
from campaigns.models import ReferenceImage, ReferenceRole
from campaigns.references import DuplicateReference, reference_create
from catalog.models import ProductImage
from catalog.sources import fetch_url
from generation.backends.base import BackendError

log = logging.getLogger(__name__)


def product_image_fetch(*, image_id: int) -> ProductImage | None:
    """Download a pending image's URL, check and clean it like an upload, and link it.

    Safe to run twice: only a PENDING image is fetched, and the same bytes are one library image.
    """
    image = (
        ProductImage.objects.select_related("product__brand")
        .filter(pk=image_id, state=ProductImage.State.PENDING)
        .first()
    )
    if image is None:
        return None
    brand = image.product.brand
    url = image.source
    try:
        data = fetch_url(url)
    except (httpx.HTTPError, BackendError) as exc:
        return _fail(
            image, f"could not download: {getattr(exc, 'message', None) or exc}"
        )
    sha = hashlib.sha256(data).hexdigest()
    reference = ReferenceImage.objects.filter(brand=brand, sha256=sha).first()
    if reference is None:
        try:
            reference = reference_create(
                brand=brand,
                uploaded_file=SimpleUploadedFile(
                    url.rsplit("/", 1)[-1].split("?", 1)[0] or "image", data
                ),
                user=None,
                role=ReferenceRole.PRODUCT,
                tags=["catalog"],
                title=f"{image.product.sku} {image.role}",
            )
        except DuplicateReference as exc:
            reference = exc.existing
        except ImageRejected as exc:
            return _fail(image, exc.message)
    with transaction.atomic():
        # Only if the row still waits for this very URL (a re-import may have changed it).
        ProductImage.objects.filter(
            pk=image.pk, state=ProductImage.State.PENDING, source=url
        ).update(
            state=ProductImage.State.READY,
            reference=reference,
            source_sha256=sha,
            error="",
        )
    return ProductImage.objects.get(pk=image.pk)


def _fail(image: ProductImage, message: str) -> ProductImage:
    log.info("Product image %s (%s) failed: %s", image.pk, image.source, message)
    ProductImage.objects.filter(pk=image.pk, state=ProductImage.State.PENDING).update(
        state=ProductImage.State.FAILED, error=message[:500]
    )
    return ProductImage.objects.get(pk=image.pk)
