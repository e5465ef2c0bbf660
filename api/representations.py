"""The JSON shapes of the API's objects, shared by the endpoints and the webhook payloads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model
from django.http import HttpRequest
from django.urls import reverse

from campaigns.models import (
    Brand,
    Campaign,
    PromptTemplate,
    ReferenceImage,
    TemplateVersion,
)
from checks.models import scores_of
from exports.models import ExportPack, PackState
from generation.batches.progress import batch_progress as progress_of
from generation.models import (
    TERMINAL_STATES,
    Asset,
    Batch,
    Generation,
)

FILE_SALT = "api.asset-file"


def base_url(request: HttpRequest) -> str:
    """The studio's public address (STUDIO_PUBLIC_URL), else the one the request came to: the
    start of every URL in a representation."""
    return settings.STUDIO_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _code(obj: Campaign | Batch | TemplateVersion | None) -> str | None:
    """The public id of an optional related object: None when its foreign key is empty (Django
    answers None for an empty key without a query)."""
    return None if obj is None else str(obj.code)


def _absolute(path: str, base: str = "") -> str:
    base = base or settings.STUDIO_PUBLIC_URL
    return f"{base}{path}" if base else path


def signed_object[M: Model](model: type[M], token: str, salt: str) -> M:
    """The asset or pack a signed file URL names (signed_file_url, signed_export_url), or a 404
    problem when the signature is bad or older than API_FILE_URL_TTL."""
    from api.problems import Problem

    try:
        code = signing.TimestampSigner(salt=salt).unsign(
            token, max_age=settings.API_FILE_URL_TTL
        )
        return model._default_manager.get(code=UUID(code))
    except (signing.BadSignature, ValueError, ObjectDoesNotExist):
        raise Problem(
            404, "not_found", "This file link is invalid or has expired."
        ) from None


def signed_file_url(asset: Asset, base: str = "") -> str:
    """A download URL that needs no token, valid API_FILE_URL_TTL seconds (for a CMS, an <img>)."""
    token = signing.TimestampSigner(salt=FILE_SALT).sign(str(asset.code))
    return _absolute(reverse("api:asset_signed_file", args=[token]), base)


def brand(b: Brand) -> dict[str, Any]:
    return {
        "id": str(b.code),
        "name": b.name,
        "description": b.description,
        "palette": b.palette,
        "fonts": b.fonts,
        "typography_hints": b.typography_hints,
        "tone_of_voice": b.tone_of_voice,
        "words_to_use": b.words_to_use,
        "words_to_avoid": b.words_to_avoid,
        "default_formats": b.default_formats,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    }


def reference(r: ReferenceImage) -> dict[str, Any]:
    return {
        "id": str(r.code),
        "brand": str(r.brand.code),
        "title": r.title,
        "original_name": r.original_name,
        "role": r.role,
        "tags": sorted(t.name for t in r.tags.all()),
        "content_type": r.content_type,
        "width": r.width,
        "height": r.height,
        "byte_size": r.byte_size,
        "sha256": r.sha256,
        "created_at": r.created_at,
    }


def campaign(c: Campaign) -> dict[str, Any]:
    return {
        "id": str(c.code),
        "brand": str(c.brand.code),
        "name": c.name,
        "objective": c.objective,
        "brief": c.brief,
        "channels": c.channels,
        "starts_on": c.starts_on,
        "ends_on": c.ends_on,
        "budget_cap": _money(c.budget_cap),
        "status": c.status,
        "created_at": c.created_at,
    }


def template(t: PromptTemplate) -> dict[str, Any]:
    latest = t.latest_version
    return {
        "id": str(t.code),
        "brand": str(t.brand.code),
        "campaign": _code(t.campaign),
        "name": t.name,
        "description": t.description,
        "latest_version": version(latest) if latest else None,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def version(v: TemplateVersion) -> dict[str, Any]:
    return {
        "id": str(v.code),
        "template": str(v.template.code),
        "number": v.number,
        "kind": v.kind,
        "body": v.body,
        "variables": v.variables,
        "reference_slots": v.reference_slots,
        "parameters": v.parameters,
        "change_note": v.change_note,
        "created_at": v.created_at,
    }


def generation(g: Generation, *, base: str = "") -> dict[str, Any]:
    asset = getattr(g, "asset", None) if g.state == "succeeded" else None
    seconds = None
    if g.finished_at and g.queued_at:
        seconds = round((g.finished_at - g.queued_at).total_seconds(), 3)
    return {
        "id": str(g.code),
        "state": g.state,
        "terminal": g.state in TERMINAL_STATES,
        "prompt": g.prompt,
        "backend": g.backend,
        "requested_backend": g.requested_backend or g.backend,
        "fallbacks": g.fallbacks,
        "model": g.model,
        "width": g.width,
        "height": g.height,
        "seed": g.seed,
        "params": g.params,
        "references": [r.get("code") for r in g.references or () if r.get("code")],
        "campaign": _code(g.campaign),
        "batch": _code(g.batch),
        "template_version": _code(g.template_version),
        "variables": g.variables,
        "cost": {
            "estimated": _money(g.estimated_cost),
            "actual": _money(g.actual_cost),
            "currency": "USD",
        },
        "timings": {
            "queued_at": g.queued_at,
            "submitted_at": g.submitted_at,
            "running_at": g.running_at,
            "finished_at": g.finished_at,
            "total_seconds": seconds,
        },
        "error": (
            {"class": g.error_class, "message": g.error_message}
            if g.error_class
            else None
        ),
        "asset": asset_brief(asset, base=base) if asset else None,
    }


def asset_brief(a: Asset, *, base: str = "") -> dict[str, Any]:
    return {
        "id": str(a.code),
        "width": a.width,
        "height": a.height,
        "format": a.format,
        "content_type": a.content_type,
        "byte_size": a.byte_size,
        "sha256": a.sha256,
        "review_status": a.review_status,
        "download_url": signed_file_url(a, base),
        "file_url": _absolute(reverse("api:asset_file", args=[a.code]), base),
    }


def asset(a: Asset, *, base: str = "") -> dict[str, Any]:
    g = a.generation
    return {
        **asset_brief(a, base=base),
        "generation": str(g.code),
        "campaign": _code(a.campaign),
        "batch": _code(a.batch),
        "backend": g.backend,
        "model": g.model,
        "prompt": g.prompt,
        "seed": g.seed,
        "variables": g.variables,
        "starred": a.starred,
        "tags": sorted(t.name for t in a.tags.all()),
        "reviewed_at": a.reviewed_at,
        "created_at": a.created_at,
        "brand_check": scores_of(a),
    }


def batch_progress(b: Batch) -> dict[str, Any]:
    """A batch's progress as its representation's `progress`."""
    p = progress_of(batch=b)
    spent = getattr(p.spend, "total", None)
    return {
        "total": p.total,
        "finished": p.finished,
        "succeeded": p.succeeded,
        "failed": p.failed,
        "active": p.active,
        "counts": dict(p.counts),
        "spent": None if spent is None else str(spent),
        "eta_seconds": p.eta_seconds,
    }


def batch(b: Batch, progress: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(b.code),
        "name": b.name,
        "campaign": str(b.campaign.code),
        "template_version": _code(b.template_version),
        "state": b.state,
        "size": b.size,
        "estimate_total": _money(b.estimate_total),
        "created_at": b.created_at,
        "dispatched_at": b.dispatched_at,
        "finished_at": b.finished_at,
    }
    if progress is not None:
        data["progress"] = progress
    return data


EXPORT_SALT = "api.export-file"


def signed_export_url(pack: ExportPack, base: str = "") -> str:
    """The pack's zip without a token, valid API_FILE_URL_TTL seconds."""
    token = signing.TimestampSigner(salt=EXPORT_SALT).sign(str(pack.code))
    return _absolute(reverse("api:export_signed_file", args=[token]), base)


def export_pack(p: ExportPack, *, base: str = "") -> dict[str, Any]:
    ready = p.state == PackState.SUCCEEDED and bool(p.file.name)
    return {
        "id": str(p.code),
        "title": p.title,
        "state": p.state,
        "terminal": not p.is_active,
        "campaign": _code(p.campaign),
        "batch": _code(p.batch),
        "assets": p.asset_count,
        "presets": p.presets,
        "formats": p.formats,
        "all_statuses": p.all_statuses,
        "progress": {"done": p.done, "total": p.total, "percent": p.percent},
        "byte_size": p.byte_size,
        "flagged": p.flagged,
        "error": p.error,
        "download_url": signed_export_url(p, base) if ready else None,
        "file_url": _absolute(reverse("api:export_file", args=[p.code]), base)
        if ready
        else None,
        "created_at": p.created_at,
        "started_at": p.started_at,
        "finished_at": p.finished_at,
        "expires_at": p.expires_at,
    }
