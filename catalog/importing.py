"""Catalog import: a shop's CSV (and a ZIP or folder of images) into products and their images.

Every row is checked before anything of it is written: its SKU (unique in the file), its image
cells (a file that exists in the ZIP/folder and is an image the reference library accepts, or an
https URL), and the row is refused with its line number and what is wrong. Refused rows are left
out; the others are imported. A dry run checks the same and writes nothing.

Re-importing updates products by SKU. An image whose bytes have the same sha256 as last time (or
the same URL) is left alone, so an unchanged row costs no image cleaning and no storage write;
a changed one becomes a new library image. Roles whose column is in the file but empty are
removed from the product; roles whose column is not in the file are kept.

Each image is stored through campaigns.references.reference_create: the checks and cleaning of
every reference upload, and the same file shared by two products is one library image.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from campaigns.images import ImageRejected, clean_image
from campaigns.models import Brand, ReferenceImage, ReferenceRole
from campaigns.references import DuplicateReference, reference_create
from catalog.csvfile import CatalogFileError, CatalogRow, read_catalog
from catalog.models import Product, ProductImage
from catalog.sources import ImageMissing, ImageSource, is_url, url_problem

log = logging.getLogger(__name__)
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True)
class RowError:
    line: int
    sku: str
    message: str

    def __str__(self) -> str:
        who = f" ({self.sku})" if self.sku else ""
        return f"Line {self.line}{who}: {self.message}"


@dataclass
class ImportReport:
    dry_run: bool
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Image ids waiting for a worker to fetch their URL.
    to_fetch: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class _Image:
    role: str
    position: int
    source: str
    data: bytes | None = None  # a file's bytes, when they changed
    sha256: str = ""
    changed: bool = True


def catalog_import(
    *,
    brand: Brand,
    data: bytes,
    images: ImageSource | None,
    dry_run: bool,
    user: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check every row, then (unless dry_run) write the rows that passed. Raises CatalogFileError
    when the file as a whole cannot be read."""
    parsed = read_catalog(data)
    report = ImportReport(dry_run=dry_run)
    report.total = len(parsed.rows) + len(parsed.errors)
    report.errors = [RowError(line, sku, msg) for line, sku, msg in parsed.errors]
    roles_in_file = set(parsed.image_roles)
    existing = {
        p.sku: p for p in Product.objects.filter(brand=brand).prefetch_related("images")
    }
    first_line: dict[str, int] = {}
    for done, row in enumerate(parsed.rows, start=1):
        if row.sku in first_line:
            report.errors.append(
                RowError(
                    row.line,
                    row.sku,
                    f"SKU “{row.sku}” is already on line {first_line[row.sku]}",
                )
            )
        else:
            first_line[row.sku] = row.line
            try:
                _import_row(
                    brand=brand,
                    row=row,
                    product=existing.get(row.sku),
                    roles_in_file=roles_in_file,
                    images=images,
                    report=report,
                    user=user,
                )
            except _Refused as exc:
                report.errors.append(RowError(row.line, row.sku, str(exc)))
        if progress is not None and (done % 25 == 0 or done == len(parsed.rows)):
            progress(done, len(parsed.rows))
    report.errors.sort(key=lambda e: e.line)
    if report.to_fetch and not dry_run:
        ids = list(report.to_fetch)

        def enqueue() -> None:
            from catalog import tasks

            for image_id in ids:
                tasks.product_image_fetch.delay(image_id)

        transaction.on_commit(enqueue)
    return report


class _Refused(Exception):
    pass


def _import_row(
    *,
    brand: Brand,
    row: CatalogRow,
    product: Product | None,
    roles_in_file: set[str],
    images: ImageSource | None,
    report: ImportReport,
    user: Any,
) -> None:
    current = {i.role: i for i in product.images.all()} if product else {}
    wanted = [_check_image(cell.role, n, cell.source, current, images)
              for n, cell in enumerate(row.images)]  # fmt: skip
    problems = [w for w in wanted if isinstance(w, str)]
    if problems:
        raise _Refused("; ".join(problems))
    planned = [w for w in wanted if isinstance(w, _Image)]
    removed = [
        role
        for role in current
        if role in roles_in_file and role not in {i.role for i in planned}
    ]
    if product is None:
        outcome = CREATED
    elif (
        product.name != row.name
        or product.attributes != row.attributes
        or removed
        or any(i.changed for i in planned)
        or any(current[i.role].position != i.position for i in planned)
    ):
        outcome = UPDATED
    else:
        outcome = UNCHANGED
    if report.dry_run or outcome == UNCHANGED:
        report.count(outcome)
        return
    stored = [
        _store_image(brand, row, image, user) for image in planned if image.changed
    ]
    with transaction.atomic():
        if product is None:
            product = Product.objects.create(
                workspace_id=brand.workspace_id,
                brand=brand,
                sku=row.sku,
                name=row.name,
                attributes=row.attributes,
            )
        else:
            Product.objects.filter(pk=product.pk).update(
                name=row.name, attributes=row.attributes
            )
        ProductImage.objects.filter(product=product, role__in=removed).delete()
        for image, reference in stored:
            obj, _ = ProductImage.objects.update_or_create(
                product=product,
                role=image.role,
                defaults={
                    "position": image.position,
                    "source": image.source[:2000],
                    "source_sha256": image.sha256,
                    "reference": reference,
                    "state": (
                        ProductImage.State.READY
                        if reference
                        else ProductImage.State.PENDING
                    ),
                    "error": "",
                },
            )
            if reference is None:
                report.to_fetch.append(obj.pk)
        for image in planned:
            if not image.changed:
                ProductImage.objects.filter(product=product, role=image.role).update(
                    position=image.position
                )
    report.count(outcome)


def _check_image(
    role: str,
    position: int,
    source: str,
    current: dict[str, ProductImage],
    images: ImageSource | None,
) -> _Image | str:
    """The image as planned, or what is wrong with it (a row problem)."""
    column = f"image_{role}"
    before = current.get(role)
    if is_url(source):
        if problem := url_problem(source):
            return f"{column}: {problem}"
        same = (
            before is not None
            and before.source == source
            and before.state != ProductImage.State.FAILED
        )
        return _Image(role, position, source, changed=not same)
    if images is None:
        return f"{column}: “{source}” is a file name but no ZIP or folder of images was given"
    try:
        data = images.read(source)
    except ImageMissing as exc:
        return f"{column}: {exc}"
    sha = hashlib.sha256(data).hexdigest()
    if before is not None and before.source_sha256 == sha and before.reference_id:
        return _Image(role, position, source, sha256=sha, changed=False)
    try:
        # The library's own checks (size, pixels, format, decodable) and its cleaning.
        clean_image(data, name=source)
    except ImageRejected as exc:
        return f"{column}: {exc.message}"
    return _Image(role, position, source, data=data, sha256=sha)


def _store_image(
    brand: Brand, row: CatalogRow, image: _Image, user: Any
) -> tuple[_Image, ReferenceImage | None]:
    """The image's library row (None for a URL the worker fetches later)."""
    if image.data is None:
        return image, None
    existing = ReferenceImage.objects.filter(brand=brand, sha256=image.sha256).first()
    if existing is not None:
        return image, existing
    try:
        reference = reference_create(
            brand=brand,
            uploaded_file=SimpleUploadedFile(
                image.source.rsplit("/", 1)[-1], image.data
            ),
            user=user,
            role=ReferenceRole.PRODUCT,
            tags=["catalog"],
            title=f"{row.sku} {image.role}",
        )
    except DuplicateReference as exc:
        reference = exc.existing
    except ImageRejected as exc:  # checked already; only a changed setting gets here
        raise _Refused(f"image_{image.role}: {exc.message}") from exc
    return image, reference


def catalog_import_file(**kwargs: Any) -> ImportReport:
    """catalog_import, with CatalogFileError turned into a report with one error on line 1."""
    try:
        return catalog_import(**kwargs)
    except CatalogFileError as exc:
        report = ImportReport(dry_run=bool(kwargs.get("dry_run")))
        message = str(exc)
        line = 1
        if message.startswith("Line "):
            head, _, rest = message.partition(": ")
            line, message = int(head[5:]), rest
        report.errors.append(RowError(line, "", message))
        return report
