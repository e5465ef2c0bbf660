"""Asset packs: asking for one, building it (the Celery task calls export_pack_build), cancelling,
expiring. Every state change is one conditional UPDATE on the expected old state."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image
from zipstream import ZipStream

from campaigns.models import Brand, Campaign, ReviewEvent, ReviewStatus
from exports import naming
from exports import presets as presets_mod
from exports.crop import plan
from exports.models import ExportPack, PackState, pack_upload_to
from exports.presets import Preset
from exports.render import (
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    prepare,
    render,
    xmp_packet,
)
from generation.models import Asset, Batch
from studio.models import Workspace

log = logging.getLogger(__name__)
MANIFEST_FIELDS = [
    "file", "asset_id", "short_id", "preset", "preset_width", "preset_height", "width",
    "height", "format", "bytes", "sha256", "too_small", "scale", "campaign", "brand",
    "template", "template_version", "prompt", "variables", "seed", "model", "backend",
    "cost", "approvals", "focal_x", "focal_y", "review_status",
]  # fmt: skip


class PackCanceled(Exception):
    pass


# --- Asking for a pack ---------------------------------------------------------------------------


def export_pack_request(
    *,
    workspace: Workspace,
    user: Any = None,
    campaign: Campaign | None = None,
    batch: Batch | None = None,
    assets: list[Asset] | None = None,
    preset_names: list[str] | None = None,
    formats: list[str] | None = None,
    all_statuses: bool = False,
    dispatch: bool = True,
    names: dict[int, str] | None = None,
    title: str = "",
) -> ExportPack:
    """Fix the selection, presets and formats of a new pack; the build runs in a worker
    (dispatch=False: the caller builds it itself, as the command line does)."""
    if sum(x is not None for x in (campaign, batch, assets)) != 1:
        raise ValidationError("Choose one of a campaign, a batch or a selection.")
    formats = list(
        dict.fromkeys(f.lower().replace("jpg", "jpeg") for f in formats or ["jpeg"])
    )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValidationError(
            f"Unknown format {unknown[0]!r}: use {', '.join(FORMATS)}."
        )
    queryset = Asset.objects.filter(workspace=workspace)
    if campaign is not None:
        queryset, brand, pack_title = (
            queryset.filter(campaign=campaign),
            campaign.brand,
            campaign.name,
        )
    elif batch is not None:
        queryset, brand, pack_title = (
            queryset.filter(batch=batch),
            batch.brand,
            f"{batch.campaign.name} – {batch}",
        )
    else:
        ids = [a.pk for a in assets or []]
        queryset = queryset.filter(pk__in=ids)
        brand = _common_brand(queryset)
        pack_title = f"Selection of {len(ids)} image{'s' if len(ids) != 1 else ''}"
    if not all_statuses:
        queryset = queryset.filter(review_status=ReviewStatus.APPROVED)
    asset_ids = list(queryset.order_by("created_at", "id").values_list("pk", flat=True))
    if not asset_ids:
        raise ValidationError(
            "Nothing to export: no approved images in this choice."
            if not all_statuses
            else "Nothing to export: no images in this choice."
        )
    try:
        # Chosen names and no presets: each image at its own size (not the brand's defaults).
        chosen = (
            presets_mod.resolve_presets(brand, preset_names or [])
            if preset_names or not names
            else []
        )
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if not chosen and not names:
        raise ValidationError("Choose at least one preset.")
    pack = ExportPack.objects.create(
        workspace=workspace,
        campaign=campaign or (batch.campaign if batch else None),
        batch=batch,
        title=(title or pack_title)[:200],
        asset_ids=asset_ids,
        presets=[p.as_json() for p in chosen],
        formats=formats,
        all_statuses=all_statuses,
        created_by=user if getattr(user, "pk", None) else None,
        total=len(asset_ids) * max(1, len(chosen)) * len(formats),
        names={str(k): v for k, v in (names or {}).items()},
    )
    if dispatch:
        from exports.tasks import export_pack_build_task

        transaction.on_commit(lambda: export_pack_build_task.delay(pack.pk))
    return pack


def _common_brand(queryset: Any) -> Brand | None:
    brand_ids = set(queryset.values_list("generation__brand", flat=True))
    if len(brand_ids) == 1 and None not in brand_ids:
        return Brand.objects.get(pk=brand_ids.pop())
    return None


# --- Building ------------------------------------------------------------------------------------


def export_pack_claim(*, pack_id: int) -> ExportPack | None:
    """Queued → building. A pack left building by a dead worker (older than the task's time
    limit) may be claimed again. None: another worker has it, or it is finished or canceled."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EXPORT_TASK_TIME_LIMIT)
    claimed = (
        ExportPack.objects.filter(pk=pack_id)
        .filter(
            Q(state=PackState.QUEUED) | Q(state=PackState.RUNNING, started_at__lt=stale)
        )
        .update(state=PackState.RUNNING, started_at=now, done=0)
    )
    return (
        ExportPack.objects.select_related("workspace").get(pk=pack_id)
        if claimed
        else None
    )


def export_pack_build(*, pack_id: int) -> ExportPack | None:
    """Build a claimed pack into storage. Safe to call twice: the claim lets one through."""
    pack = export_pack_claim(pack_id=pack_id)
    if pack is None:
        return None
    storage = pack.file.storage
    name = storage.get_available_name(pack_upload_to(pack, pack.download_name))
    counter = _Counter()
    flagged: list[dict[str, Any]] = []
    try:
        reader = io.BufferedReader(
            _ChunkReader(_zip_chunks(pack, flagged), counter), 1 << 20
        )
        saved = storage.save(name, File(reader, name=name))
    except PackCanceled:
        _delete_quietly(storage, name)
        return ExportPack.objects.get(pk=pack_id)
    except Exception as exc:
        log.exception("Export pack %s failed", pack.code)
        _delete_quietly(storage, name)
        ExportPack.objects.filter(pk=pack_id, state=PackState.RUNNING).update(
            state=PackState.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    ttl = settings.EXPORT_PACK_TTL_HOURS
    finished = ExportPack.objects.filter(pk=pack_id, state=PackState.RUNNING).update(
        state=PackState.SUCCEEDED,
        file=saved,
        byte_size=counter.bytes,
        done=pack.total,
        flagged=flagged,
        finished_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=ttl) if ttl > 0 else None,
    )
    if not finished:  # canceled while the last bytes were uploaded
        _delete_quietly(storage, saved)
    return ExportPack.objects.get(pk=pack_id)


def _zip_chunks(pack: ExportPack, flagged: list[dict[str, Any]]) -> Iterator[bytes]:
    """The ZIP, one rendition at a time: memory holds one decoded original and one encoded file."""
    presets = [Preset.from_json(p) for p in pack.presets]
    assets = _assets(pack)
    approvals = _approvals(pack)
    max_upscale = settings.EXPORT_MAX_UPSCALE
    rows: list[dict[str, Any]] = []
    zs = ZipStream(sized=False)  # stored: the images are compressed already
    names: set[str] = set()
    done = 0
    for index, asset in enumerate(assets):
        if (
            index
            and not ExportPack.objects.filter(
                pk=pack.pk, state=PackState.RUNNING
            ).exists()
        ):
            raise PackCanceled
        g = asset.generation
        version = g.template_version
        brand = g.brand or (asset.campaign.brand if asset.campaign else None)
        stem = naming.stem(
            campaign=asset.campaign.name if asset.campaign else "",
            template=version.template.name if version else "",
            variables=g.variables or {},
            code=asset.code,
        )
        chosen_name = pack.names.get(str(asset.pk)) if pack.names else None
        if chosen_name:
            stem = chosen_name
        if stem in names:  # two assets with the same name and short id: lengthen the id
            stem = f"{stem}-{asset.code.hex[8:16]}"
        names.add(stem)
        with asset.file.open("rb") as handle:
            image = Image.open(handle)
            image.load()
        image = prepare(image)
        xmp = xmp_packet(
            model=g.model,
            backend=g.backend,
            description=g.prompt if presets_mod.embeds_prompt(brand) else None,
        )
        common = {
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
        }
        # No presets (a pack with chosen names): every image at its own size.
        for preset in presets or [
            Preset("original", "Original size", image.width, image.height)
        ]:
            p = plan(
                image.width,
                image.height,
                preset.width,
                preset.height,
                focal_x=asset.focal_x,
                focal_y=asset.focal_y,
                max_upscale=max_upscale,
            )
            if p.too_small:
                flagged.append(
                    {
                        "asset": common["short_id"],
                        "preset": preset.key,
                        "needed": round(p.scale, 2),
                    }
                )
            for fmt in pack.formats:
                data = render(image, p, fmt, xmp=xmp)
                arcname = (
                    f"{stem}.{EXTENSIONS[fmt]}"
                    if not presets
                    else f"{preset.key}/{stem}.{EXTENSIONS[fmt]}"
                )
                zs.add(data, arcname)
                rows.append(
                    {
                        "file": arcname,
                        **common,
                        "preset": preset.key,
                        "preset_width": preset.width,
                        "preset_height": preset.height,
                        "width": p.width,
                        "height": p.height,
                        "format": fmt,
                        "content_type": CONTENT_TYPES[fmt],
                        "bytes": len(data),
                        "sha256": _sha256(data),
                        "too_small": p.too_small,
                        "scale": round(p.scale, 4),
                    }
                )
                del data
                yield from zs.all_files()
        done += max(1, len(presets)) * len(pack.formats)
        ExportPack.objects.filter(pk=pack.pk, state=PackState.RUNNING).update(done=done)
    manifest = _manifest(pack, presets, rows, flagged, max_upscale)
    zs.add(json.dumps(manifest, indent=2, ensure_ascii=False).encode(), "manifest.json")
    zs.add(_csv(rows), "manifest.csv")
    zs.add(_readme(pack, presets, rows, flagged, max_upscale), "README.txt")
    yield from zs.finalize()


def _assets(pack: ExportPack) -> list[Asset]:
    by_id = {
        a.pk: a
        for a in Asset.objects.filter(
            workspace=pack.workspace, pk__in=pack.asset_ids
        ).select_related(
            "generation__template_version__template",
            "generation__brand",
            "campaign__brand",
        )
    }
    # Assets deleted since the pack was asked for are left out.
    return [by_id[i] for i in pack.asset_ids if i in by_id]


def _approvals(pack: ExportPack) -> dict[int, list[dict[str, str]]]:
    result: dict[int, list[dict[str, str]]] = {}
    events = (
        ReviewEvent.objects.filter(
            asset_id__in=pack.asset_ids, to_status=ReviewStatus.APPROVED
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


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _manifest(
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


def _csv(rows: list[dict[str, Any]]) -> bytes:
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
        writer.writerow(flat)
    return buffer.getvalue().encode("utf-8")


def _readme(
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
        "cost, approvals (who, when) and focal point.",
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


class _Counter:
    bytes = 0


class _ChunkReader(io.RawIOBase):
    """A read-only, unseekable file over an iterator of byte chunks: storage.save() (local
    files or S3 multipart) pulls the ZIP through it as it is generated."""

    def __init__(self, chunks: Iterator[bytes], counter: _Counter) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._counter.bytes += n
        return n


def _delete_quietly(storage: Any, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:  # the file may never have been created
        log.warning("Could not delete %s", name, exc_info=True)


# --- Cancel, expire, recover ---------------------------------------------------------------------


def export_pack_cancel(*, pack: ExportPack) -> bool:
    """Stop a queued or building pack; the worker notices before its next image."""
    return bool(
        ExportPack.objects.filter(
            pk=pack.pk, state__in=[PackState.QUEUED, PackState.RUNNING]
        ).update(state=PackState.CANCELED, finished_at=timezone.now())
    )


def export_packs_sweep() -> dict[str, int]:
    """Beat: delete expired packs' files, and queue again packs whose worker died mid-build."""
    now = timezone.now()
    expired = 0
    for pack in ExportPack.objects.filter(
        state=PackState.SUCCEEDED, expires_at__lt=now
    ):
        if ExportPack.objects.filter(pk=pack.pk, state=PackState.SUCCEEDED).update(
            state=PackState.EXPIRED, file=""
        ):
            if pack.file.name:
                _delete_quietly(pack.file.storage, pack.file.name)
            expired += 1
    stale = now - timedelta(seconds=settings.EXPORT_TASK_TIME_LIMIT)
    from exports.tasks import export_pack_build_task

    requeued = 0
    for pack_id in ExportPack.objects.filter(
        state=PackState.RUNNING, started_at__lt=stale
    ).values_list("pk", flat=True):
        export_pack_build_task.delay(pack_id)
        requeued += 1
    return {"expired": expired, "requeued": requeued}
