"""Ingest: download the result, inspect it, store the file and its thumbnail, upsert the Asset."""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from generation import (
    accounts,
    claims,
    imaging,
    signals,
)
from generation.backends.base import (
    Backend,
    BackendError,
    ErrorClass,
    PollResult,
    ProviderState,
)
from generation.engine import policy as engine
from generation.engine.failure import _on_error
from generation.engine.state import (
    _SLACK,
    INGEST,
    Next,
    S,
    _claim_ttl,
    _load,
    _transition,
)
from generation.metrics import finished, provider_call
from generation.models import (
    Asset,
    Generation,
)

log = logging.getLogger(__name__)


class _ResultLost(Exception):
    pass


def generation_ingest(*, generation_id: int) -> Next:
    """Download the result, verify it with Pillow, store it and its thumbnail, create the Asset."""
    generation = _load(generation_id, "workspace")
    now = timezone.now()
    if generation is None or generation.state != S.INGESTING:
        return Next()
    claims.hold(generation_id, now + _claim_ttl(), ttl=_claim_ttl().total_seconds())
    claimed = (
        Generation.objects.filter(pk=generation_id, state=S.INGESTING)
        .filter(Q(due_at__isnull=True) | Q(due_at__lte=now + _SLACK))
        .update(due_at=now + _claim_ttl(), updated_at=now)
    )
    if not claimed:
        return Next()
    try:
        backend = accounts.backend_for_generation(generation)
        content = _download(generation, backend)
    except _ResultLost as exc:
        # A synchronous backend keeps nothing: draw it again (counts as a retry).
        return _on_error(
            generation,
            BackendError(ErrorClass.NOT_FOUND, str(exc), retryable=True),
            step="resubmit",
        )
    except BackendError as exc:
        return _on_error(generation, exc, step=INGEST)
    return _store(generation, content)


def _download(generation: Generation, backend: Backend) -> bytes:
    """The result's bytes. A result URL that fails as expired (a 403 from the delivery host: a
    lapsed signature, or a transient refusal) is not the end while the provider keeps the task:
    poll it again for a (fresh) URL and fetch that; if that fails too, the error is retryable
    and the ingest retries with backoff, polling again each time. Only a provider that no longer
    has the result, or the retries running out, make it `expired` (a paid image lost)."""
    synchronous = backend.capabilities().synchronous
    if generation.result_url:
        try:
            with provider_call(generation.backend, "fetch"):
                content, _type = backend.fetch(
                    PollResult(ProviderState.READY, result_url=generation.result_url)
                )
            return content
        except BackendError as exc:
            if exc.error_class != ErrorClass.EXPIRED:
                raise
            log.info(
                "result URL of %s refused as expired; polling for a fresh one",
                generation.code,
            )
    if synchronous:
        raise _ResultLost("the synchronous result was lost before it was stored")
    with provider_call(generation.backend, "poll"):
        result = backend.poll(
            task_id=generation.provider_task_id, poll_url=generation.poll_url or None
        )
    if result.state == ProviderState.READY and (
        result.result_url or result.result_bytes is not None
    ):
        try:
            with provider_call(generation.backend, "fetch"):
                content, _type = backend.fetch(result)
        except BackendError as exc:
            if exc.error_class != ErrorClass.EXPIRED:
                raise
            # The provider still lists the result: worth another try after a backoff.
            raise BackendError(
                ErrorClass.EXPIRED,
                f"{exc.message} (the provider still keeps the result: retrying)",
                retryable=True,
                status_code=exc.status_code,
            ) from exc
        if result.result_url and result.result_url != generation.result_url:
            Generation.objects.filter(pk=generation.pk).update(
                result_url=result.result_url
            )
        return content
    if result.state == ProviderState.FAILED and result.error is not None:
        error = result.error
        if error.error_class in (ErrorClass.NOT_FOUND, ErrorClass.EXPIRED):
            # The provider no longer has it: the paid image is lost.
            raise BackendError(ErrorClass.EXPIRED, error.message, details=error.details)
        raise error
    raise BackendError(
        ErrorClass.EXPIRED, "The result is no longer available at the provider."
    )


def _put(key: str, content: bytes) -> str:
    # Deterministic keys: a rerun overwrites instead of adding a second file (storages rename
    # on conflict, S3Storage here too with file_overwrite=False, so delete first).
    if default_storage.exists(key):
        default_storage.delete(key)
    return default_storage.save(key, ContentFile(content))


def _store(generation: Generation, content: bytes) -> Next:
    try:
        info, thumbnail = imaging.inspect_and_thumbnail(
            content,
            max_pixels=int(engine.conf("ENGINE_MAX_RESULT_PIXELS", 64_000_000)),
            max_side=int(engine.conf("ENGINE_THUMBNAIL_SIZE", 512)),
        )
    except imaging.ImageRejected as exc:
        error = BackendError(
            ErrorClass.BAD_RESULT,
            f"The result is not a usable image: {exc}.",
            retryable=True,
        )
        return _on_error(generation, error, step=INGEST)
    base = f"generations/{generation.workspace.code}/{generation.code}"
    file_name = _put(f"{base}/image.{info.extension}", content)
    thumb_name = _put(f"{base}/thumb.webp", thumbnail)
    defaults = {
        "workspace_id": generation.workspace_id,
        # Copied for the gallery's per-campaign and per-batch indexes (generation/gallery/queries.py).
        "campaign_id": generation.campaign_id,
        "batch_id": generation.batch_id,
        "file": file_name,
        "thumbnail": thumb_name,
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "content_type": info.content_type,
        "byte_size": info.byte_size,
        "sha256": info.sha256,
        # Copied for the gallery's cost sorts (an index per scope): the charge, else the estimate.
        "cost": generation.actual_cost
        if generation.actual_cost is not None
        else generation.estimated_cost,
    }
    # One INSERT ... ON CONFLICT (generation) DO UPDATE: a rerun, even a concurrent one,
    # leaves exactly one Asset, in one round trip.
    (asset,) = Asset.objects.bulk_create(
        [Asset(generation=generation, **defaults)],
        update_conflicts=True,
        unique_fields=["generation"],
        update_fields=[name.removesuffix("_id") for name in defaults],
    )
    stored = _transition(
        generation.pk,
        source=[S.INGESTING],
        target=S.SUCCEEDED,
        result_url="",
        due_at=None,
        error_class="",
        error_message="",
    )
    if stored:
        finished(generation, S.SUCCEEDED)
        # Brand checks (checks/) listen: they queue their own task, the image is in the gallery now.
        # (PostgreSQL returns the row's id from the upsert; other databases need a query.)
        asset_id = asset.pk or Asset.objects.get(generation=generation).pk
        signals.asset_stored.send(sender=Asset, asset_id=asset_id)
    return Next()
