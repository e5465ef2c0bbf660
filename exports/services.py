"""Asset packs: asking for one, building it (the Celery task calls export_pack_build), cancelling,
expiring. Every state change is one conditional UPDATE on the expected old state."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import mimetypes
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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

from campaigns.models import Brand, Campaign
from checks.models import scores_of
from exports import c2pa_sign, naming, signals
from exports import presets as presets_mod
from exports.crop import Plan, plan
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
from generation.models import Asset, Batch, ReviewEvent, ReviewStatus
from studio.models import Workspace

log = logging.getLogger(__name__)
MANIFEST_FIELDS = [
    "file", "asset_id", "short_id", "preset", "preset_width", "preset_height", "width",
    "height", "format", "bytes", "sha256", "too_small", "scale", "campaign", "brand",
    "template", "template_version", "prompt", "variables", "seed", "model", "backend",
    "cost", "approvals", "focal_x", "focal_y", "review_status",
    # The asset's brand check (checks app; empty scores: not applicable or not checked yet).
    "check_state", "palette_score", "text_score", "logo_score", "product_score",
    "channel_score", "check_flags", "needs_review",
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
        saved = _save_streaming(storage, name, _zip_chunks(pack, flagged), counter)
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
    else:
        workspace_id = pack.workspace_id
        transaction.on_commit(
            lambda: signals.pack_ready.send(
                sender=ExportPack, pack_id=pack_id, workspace_id=workspace_id
            )
        )
    return ExportPack.objects.get(pk=pack_id)


@dataclass
class _Job:
    """One asset's renditions, rendered off the main thread: plain data in, bytes out."""

    original: bytes
    original_type: str
    stem: str
    presets: list[Preset]
    formats: list[str]
    focal: tuple[float | None, float | None]
    max_upscale: float
    xmp: bytes
    model_label: str
    c2pa_key: c2pa_sign.SigningKey | None


def _render_job(job: _Job) -> list[tuple[Preset, Plan, str, str, bytes]]:
    """Decode, then crop/resize/encode (and sign) every preset × format of one asset."""
    # Not a `with` block: closing an image frees its pixels, and prepare() may return it as is.
    opened = Image.open(io.BytesIO(job.original))
    opened.load()
    image = prepare(opened)
    signer = job.c2pa_key.signer() if job.c2pa_key else None
    # The original's own C2PA manifest (a provider's credential) is kept as the ingredient.
    parent = (
        job.original
        if signer and c2pa_sign.has_manifest(job.original, job.original_type)
        else None
    )
    out = []
    # No presets (a pack with chosen names): every image at its own size, named without a folder.
    for preset in job.presets or [
        Preset("original", "Original size", image.width, image.height)
    ]:
        p = plan(
            image.width,
            image.height,
            preset.width,
            preset.height,
            focal_x=job.focal[0],
            focal_y=job.focal[1],
            max_upscale=job.max_upscale,
        )
        for fmt in job.formats:
            data = render(image, p, fmt, xmp=job.xmp)
            arcname = (
                f"{preset.key}/{job.stem}.{EXTENSIONS[fmt]}"
                if job.presets
                else f"{job.stem}.{EXTENSIONS[fmt]}"
            )
            if signer is not None:
                data = c2pa_sign.sign(
                    data,
                    fmt,
                    signer=signer,
                    title=arcname,
                    crop=tuple(round(v) for v in p.box),
                    size=(p.width, p.height),
                    model_label=job.model_label,
                    original=parent,
                    original_type=job.original_type,
                )
            out.append((preset, p, fmt, arcname, data))
    return out


def _zip_chunks(pack: ExportPack, flagged: list[dict[str, Any]]) -> Iterator[bytes]:
    """The ZIP, in asset order. EXPORT_BUILD_THREADS assets render at once (Pillow releases
    the GIL while decoding, resampling and encoding); at most that many plus one are held in
    memory, however many go in."""
    presets = [Preset.from_json(p) for p in pack.presets]
    assets = _assets(pack)
    approvals = _approvals(pack)
    max_upscale = settings.EXPORT_MAX_UPSCALE
    c2pa_key = c2pa_sign.configured_key()
    threads = max(1, settings.EXPORT_BUILD_THREADS)
    rows: list[dict[str, Any]] = []
    zs = ZipStream(sized=False)  # stored: the images are compressed already
    names: set[str] = set()
    pending: deque[tuple[dict[str, Any], Future]] = deque()
    done = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export") as pool:
        queue = iter(enumerate(assets))
        while True:
            while len(pending) < threads + 1:
                nxt = next(queue, None)
                if nxt is None:
                    break
                index, asset = nxt
                if (
                    index
                    and not ExportPack.objects.filter(
                        pk=pack.pk, state=PackState.RUNNING
                    ).exists()
                ):
                    raise PackCanceled
                common, job = _job(asset, approvals, names, presets, pack, max_upscale)
                job.c2pa_key = c2pa_key
                pending.append((common, pool.submit(_render_job, job)))
            if not pending:
                break
            common, future = pending.popleft()
            for preset, p, fmt, arcname, data in future.result():
                if p.too_small and fmt == pack.formats[0]:
                    flagged.append(
                        {
                            "asset": common["short_id"],
                            "preset": preset.key,
                            "needed": round(p.scale, 2),
                        }
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
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "too_small": p.too_small,
                        "scale": round(p.scale, 4),
                        "c2pa": c2pa_key is not None,
                    }
                )
                del data
                yield from zs.all_files()
            done += max(1, len(presets)) * len(pack.formats)
            ExportPack.objects.filter(pk=pack.pk, state=PackState.RUNNING).update(
                done=done
            )
    manifest = _manifest(pack, presets, rows, flagged, max_upscale)
    zs.add(json.dumps(manifest, indent=2, ensure_ascii=False).encode(), "manifest.json")
    zs.add(_csv(rows), "manifest.csv")
    zs.add(_readme(pack, presets, rows, flagged, max_upscale), "README.txt")
    yield from zs.finalize()


def asset_record(
    asset: Asset, approvals: dict[int, list[dict[str, str]]]
) -> dict[str, Any]:
    """The manifest's fields of one asset (the same for each of its renditions); also what an
    outside reviewer sees next to the image."""
    g = asset.generation
    version = g.template_version
    brand = g.brand or (asset.campaign.brand if asset.campaign else None)
    return {
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
        "brand_check": scores_of(asset),
    }


def _job(
    asset: Asset,
    approvals: dict[int, list[dict[str, str]]],
    names: set[str],
    presets: list[Preset],
    pack: ExportPack,
    max_upscale: float,
) -> tuple[dict[str, Any], _Job]:
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
    if chosen_name:  # a pack with chosen names (catalog: <sku>/<shot>_<n>)
        stem = chosen_name
    if stem in names:  # two assets with the same name and short id: lengthen the id
        stem = f"{stem}-{asset.code.hex[8:16]}"
    names.add(stem)
    with asset.file.open("rb") as handle:
        original = handle.read()
    job = _Job(
        original=original,
        original_type=mimetypes.guess_type(asset.file.name)[0] or "image/png",
        stem=stem,
        presets=presets,
        formats=list(pack.formats),
        focal=(asset.focal_x, asset.focal_y),
        max_upscale=max_upscale,
        xmp=xmp_packet(
            model=g.model,
            backend=g.backend,
            description=g.prompt if presets_mod.embeds_prompt(brand) else None,
        ),
        model_label=f"FLUX.2 {g.model} ({g.backend})",
        c2pa_key=None,
    )
    return asset_record(asset, approvals), job


def _assets(pack: ExportPack) -> list[Asset]:
    by_id = {
        a.pk: a
        for a in Asset.objects.filter(
            workspace=pack.workspace, pk__in=pack.asset_ids
        ).select_related(
            "generation__template_version__template",
            "generation__brand",
            "campaign__brand",
            "brand_check",
        )
    }
    # Assets deleted since the pack was asked for are left out.
    return [by_id[i] for i in pack.asset_ids if i in by_id]


def _approvals(pack: ExportPack) -> dict[int, list[dict[str, str]]]:
    return _approvals_for(pack.asset_ids)


def _approvals_for(asset_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    """Who approved each asset and when (every approval, oldest first)."""
    result: dict[int, list[dict[str, str]]] = {}
    events = (
        ReviewEvent.objects.filter(
            asset_id__in=asset_ids, to_status=ReviewStatus.APPROVED
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
        check = row["brand_check"]
        flat.update(
            check_state=check["state"],
            palette_score=check["palette"],
            text_score=check["text"],
            logo_score=check["logo"],
            product_score=check["product"],
            channel_score=check["channels"],
            check_flags=" ".join(check["flags"]),
            needs_review=check["needs_review"],
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
        "cost, approvals (who, when) and focal point, and the brand check's scores (0..1, 1 best;",
        "empty where a check did not apply or has not run) and flags.",
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


_END = object()


class _Abort:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _save_streaming(
    storage: Any, name: str, chunks: Iterator[bytes], counter: _Counter
) -> str:
    """storage.save() the ZIP as it is generated, memory bounded by a small queue.

    The generator (which reads and updates the database) runs on this thread; storage.save()
    runs on a helper thread that only moves bytes. The other way round, S3's transfer threads
    would pull the generator and query the database on connections of their own.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=8)
    outcome: dict[str, Any] = {}

    def upload() -> None:
        try:
            reader = io.BufferedReader(_QueueReader(handoff, counter), 1 << 20)
            outcome["name"] = storage.save(name, File(reader, name=name))
        except BaseException as exc:  # handed to the generating thread
            outcome["error"] = exc

    def put(item: Any) -> None:
        while True:
            try:
                handoff.put(item, timeout=0.5)
                return
            except queue.Full:
                if not uploader.is_alive():
                    return

    uploader = threading.Thread(target=upload, name="export-upload", daemon=True)
    uploader.start()
    try:
        for chunk in chunks:
            if not uploader.is_alive():
                break
            put(chunk)
    except BaseException as exc:
        put(_Abort(exc))  # the upload fails too, so no half pack is committed
        uploader.join()
        raise
    put(_END)
    uploader.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["name"]


class _QueueReader(io.RawIOBase):
    """A read-only, unseekable file over the byte chunks handed over through a queue."""

    def __init__(self, handoff: queue.Queue[Any], counter: _Counter) -> None:
        self._handoff = handoff
        self._pending = memoryview(b"")
        self._counter = counter
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._ended:
                return 0
            item = self._handoff.get()
            if item is _END:
                self._ended = True
                return 0
            if isinstance(item, _Abort):
                self._ended = True
                raise OSError("pack build stopped") from item.error
            self._pending = memoryview(item)
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
