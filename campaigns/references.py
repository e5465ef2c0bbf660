"""Services for the reference library: adding, editing and removing a brand's reference images.

Storage writes happen outside database transactions (house rule 13): files are written first and
removed again if the row cannot be saved; on delete the row goes first and the files follow once
the deletion has committed, so a row never points at a missing file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from django.contrib.auth.models import User
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from campaigns.images import ImageRejected, clean_image
from campaigns.models import Brand, ReferenceImage, ReferenceRole, Tag
from studio.input_rules import refuse_nul
from studio.models import Workspace

__all__ = [
    "DuplicateReference",
    "ImageRejected",
    "normalise_tags",
    "reference_create",
    "reference_delete",
    "reference_update",
    "tags_for_workspace",
]

logger = logging.getLogger(__name__)

TAG_MAX_LENGTH = Tag._meta.get_field("name").max_length or 40
MAX_TAGS_PER_REFERENCE = 20


class DuplicateReference(Exception):
    """The same file (by sha256 of the uploaded bytes) is already in this brand's library."""

    def __init__(self, existing: ReferenceImage) -> None:
        self.existing = existing
        super().__init__(f"This image is already in the library as “{existing}”.")


def normalise_tags(names: Iterable[str]) -> list[str]:
    """Lower-case, trimmed, inner whitespace collapsed, at most 40 characters, no duplicates, in order."""
    seen: dict[str, None] = {}
    for name in names:
        refuse_nul(str(name), "A tag")
        tag = re.sub(r"\s+", " ", name).strip().lower()[:TAG_MAX_LENGTH].strip()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def tags_for_workspace(*, workspace: Workspace, names: Iterable[str]) -> list[Tag]:
    """The workspace's Tag rows for `names` (normalised), creating the missing ones."""
    wanted = normalise_tags(names)
    if not wanted:
        return []
    # ignore_conflicts: two uploads adding the same new tag at once must not fail each other.
    Tag.objects.bulk_create(
        [Tag(workspace=workspace, name=name) for name in wanted], ignore_conflicts=True
    )
    by_name = {
        tag.name: tag
        for tag in Tag.objects.filter(workspace=workspace, name__in=wanted)
    }
    return [by_name[name] for name in wanted if name in by_name]


def reference_create(
    *,
    brand: Brand,
    uploaded_file: File,
    user: User | None,
    role: str,
    tags: list[str],
    title: str = "",
) -> ReferenceImage:
    """Clean an uploaded image and add it to the brand's library.

    Raises ImageRejected (nothing stored) when the file is not an image we accept, and
    DuplicateReference (nothing stored) when the same file is already in this brand's library.
    """
    if role not in ReferenceRole.values:
        raise ValueError(f"Unknown reference role {role!r}")
    name = uploaded_file.name or ""
    cleaned = clean_image(uploaded_file, name=name)

    existing = ReferenceImage.objects.filter(brand=brand, sha256=cleaned.sha256).first()
    if existing is not None:
        raise DuplicateReference(existing)

    reference = ReferenceImage(
        workspace=brand.workspace,  # upload_to reads its code
        brand=brand,
        title=title.strip()[:200],
        original_name=_original_name(name),
        role=role,
        content_type=cleaned.content_type,
        width=cleaned.width,
        height=cleaned.height,
        byte_size=cleaned.byte_size,
        sha256=cleaned.sha256,
        uploaded_by=user,
    )
    try:
        # Through the field's storage (default_storage): works the same on local disk and S3.
        reference.file.save(
            f"image.{cleaned.extension}", ContentFile(cleaned.content), save=False
        )
        reference.thumbnail.save(
            "thumbnail.webp", ContentFile(cleaned.thumbnail), save=False
        )
        with transaction.atomic():
            reference.save()
            reference.tags.set(
                tags_for_workspace(workspace=brand.workspace, names=tags)
            )
    except IntegrityError as exc:
        reference_files_delete([reference.file.name, reference.thumbnail.name])
        # The unique (brand, sha256) constraint: the same file arrived twice at the same moment.
        existing = ReferenceImage.objects.filter(
            brand=brand, sha256=cleaned.sha256
        ).first()
        if existing is not None:
            raise DuplicateReference(existing) from exc
        raise
    except BaseException:
        reference_files_delete([reference.file.name, reference.thumbnail.name])
        raise
    return reference


def reference_update(
    *, reference: ReferenceImage, role: str, tags: list[str], title: str
) -> ReferenceImage:
    """Change a reference's role, tags and title (the image itself never changes)."""
    if role not in ReferenceRole.values:
        raise ValueError(f"Unknown reference role {role!r}")
    reference.role = role
    reference.title = title.strip()[:200]
    with transaction.atomic():
        reference.save(update_fields=["role", "title"])
        reference.tags.set(
            tags_for_workspace(workspace=reference.workspace, names=tags)
        )
    return reference


def reference_delete(*, reference: ReferenceImage) -> None:
    """Delete a reference and, once that has committed, its files; a brand using it as logo loses it."""
    names = [reference.file.name, reference.thumbnail.name]
    with transaction.atomic():
        # The FK's SET_NULL would do this too; doing it here keeps the in-memory brand right.
        Brand.objects.filter(pk=reference.brand_id, logo=reference).update(logo=None)
        if reference.brand.logo_id == reference.pk:
            reference.brand.logo = None
        reference.delete()
        transaction.on_commit(lambda: reference_files_delete(names))


def _original_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:255]


def reference_files_delete(names: Iterable[str | None]) -> None:
    """Remove stored reference files (call once the rows' delete has committed)."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:
            # A leftover file costs storage, not correctness; keep the request or task going.
            logger.exception("Could not delete stored reference file %s", name)
