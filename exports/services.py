"""Asset packs: asking for one, building it (the Celery task calls export_pack_build), cancelling,
expiring. Every state change is one conditional UPDATE on the expected old state.

What goes into the ZIP is exports/pack_zip.py (renditions) and exports/manifest.py (what the pack
says about them); exports/streaming.py saves it to storage as it is made."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Brand, Campaign
from exports import presets as presets_mod
from exports import signals
from exports.models import ExportPack, PackState, pack_upload_to
from exports.pack_zip import PackCanceled, zip_chunks
from exports.render import FORMATS
from exports.streaming import ByteCounter, delete_quietly, save_streaming
from generation.models import Asset, Batch, ReviewStatus
from studio.models import Workspace

log = logging.getLogger(__name__)


# --- Asking for a pack ---------------------------------------------------------------------------


def export_pack_request(
    *,
    workspace: Workspace,
    user: Any = None,
    campaign: Campaign | None = None,
    batch: Batch | None = None,
    assets: list[Asset] | None = None,
    preset_names: list[str] | None = None,
    formats: Sequence[str] | None = None,
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
    brand: Brand | None
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
    counter = ByteCounter()
    flagged: list[dict[str, Any]] = []
    try:
        saved = save_streaming(storage, name, zip_chunks(pack, flagged), counter)
    except PackCanceled:
        delete_quietly(storage, name)
        return ExportPack.objects.get(pk=pack_id)
    except Exception as exc:
        log.exception("Export pack %s failed", pack.code)
        delete_quietly(storage, name)
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
        delete_quietly(storage, saved)
    else:
        workspace_id = pack.workspace_id
        transaction.on_commit(
            lambda: signals.pack_ready.send(
                sender=ExportPack, pack_id=pack_id, workspace_id=workspace_id
            )
        )
    return ExportPack.objects.get(pk=pack_id)


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
                delete_quietly(pack.file.storage, pack.file.name)
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
