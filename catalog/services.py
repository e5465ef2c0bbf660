"""Catalog services the web pages and tasks call: import jobs and marketplace checks."""

from __future__ import annotations

from typing import Any

from django.core.files.base import File
from django.db import transaction
from django.utils import timezone
from PIL import Image

from campaigns.models import Brand
from catalog.importing import catalog_import_file
from catalog.marketplace import check_main_image
from catalog.models import CatalogImport, MarketplaceCheck
from catalog.sources import ZipSource

S = CatalogImport.State


def catalog_import_job_request(
    *, brand: Brand, csv_file: File, images_file: File | None, dry_run: bool, user: Any
) -> CatalogImport:
    """Store the files and queue the import (or its preview) for a worker."""
    job = CatalogImport(
        workspace_id=brand.workspace_id, brand=brand, dry_run=dry_run, created_by=user
    )
    job.csv_file.save("catalog.csv", csv_file, save=False)
    if images_file is not None:
        job.images_file.save("images.zip", images_file, save=False)
    job.save()
    from catalog.tasks import catalog_import_run

    transaction.on_commit(lambda: catalog_import_run.delay(job.pk))
    return job


def catalog_import_job_again(*, job: CatalogImport, user: Any) -> CatalogImport:
    """The same files, for real this time (after a preview)."""
    new = CatalogImport.objects.create(
        workspace_id=job.workspace_id,
        brand=job.brand,
        dry_run=False,
        created_by=user,
        csv_file=job.csv_file.name,
        images_file=job.images_file.name,
    )
    from catalog.tasks import catalog_import_run

    transaction.on_commit(lambda: catalog_import_run.delay(new.pk))
    return new


def catalog_import_job_run(*, import_id: int) -> CatalogImport | None:
    """Run a queued import; safe to call twice (the claim lets one through)."""
    if not CatalogImport.objects.filter(pk=import_id, state=S.QUEUED).update(
        state=S.RUNNING
    ):
        return None
    job = CatalogImport.objects.select_related("brand__workspace").get(pk=import_id)

    def progress(done: int, total: int) -> None:
        CatalogImport.objects.filter(pk=import_id).update(done=done, total=total)

    images = None
    try:
        with job.csv_file.open("rb") as handle:
            data = handle.read()
        if job.images_file:
            images = ZipSource(job.images_file.open("rb"))
        report = catalog_import_file(
            brand=job.brand,
            data=data,
            images=images,
            dry_run=job.dry_run,
            user=job.created_by,
            progress=progress,
        )
    except Exception as exc:
        CatalogImport.objects.filter(pk=import_id).update(
            state=S.FAILED,
            failure=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    finally:
        if images is not None:
            images.close()
    CatalogImport.objects.filter(pk=import_id).update(
        state=S.SUCCEEDED,
        total=report.total,
        done=report.total,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        errors=[
            {"line": e.line, "sku": e.sku, "message": e.message} for e in report.errors
        ],
        finished_at=timezone.now(),
    )
    return CatalogImport.objects.get(pk=import_id)


def marketplace_check_asset(*, asset_id: int) -> MarketplaceCheck | None:
    from generation.models import Asset

    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is None:
        return None
    with asset.file.open("rb") as handle:
        image = Image.open(handle)
        image.load()
    problems = check_main_image(image)
    check, _ = MarketplaceCheck.objects.update_or_create(
        asset=asset, defaults={"passed": not problems, "problems": problems}
    )
    return check
