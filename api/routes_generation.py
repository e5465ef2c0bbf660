"""Generations (with `Prefer: wait=N`), batches, assets and their review, files."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema, Status
from ninja.decorators import decorate_view
from pydantic import Field

from api import representations as rep
from api.auth import require
from api.idempotency import idempotent
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode, page
from api.problems import Problem
from api.schemas import (
    AssetOut,
    AssetPage,
    BatchIn,
    BatchOut,
    BatchPage,
    CancelOut,
    CommentIn,
    CommentOut,
    GenerationIn,
    GenerationOut,
    GenerationPage,
    ReviewIn,
    ReviewStatusIn,
)
from api.schemas import Problem as ProblemOut
from api.tokens import Caller
from api.waiting import requested_wait, wait_until
from campaigns.models import Brand, Campaign, ReferenceImage, TemplateVersion
from campaigns.prompt_templates import template_version_render
from campaigns.prompting import BrandKit, PromptError
from generation import review
from generation.batches import services as batch_services
from generation.batches.progress import batch_progress
from generation.batches.services import batch_sync_state
from generation.batches.spec import (
    FIXED,
    MATRIX,
    RANDOM,
    ROWS,
    BatchSpec,
    Row,
    Seeds,
    Size,
    Target,
)
from generation.batches.targets import max_batch_size
from generation.engine import create as engine_create
from generation.gallery import queries as gallery
from generation.models import TERMINAL_STATES, Asset, Batch, Generation, ReviewStatus
from studio.models import Role
from studio.private_files import serve_private_file

router = Router(tags=["generation"])
ERRORS = dict.fromkeys((401, 403, 404, 422, 429), ProblemOut)


class ListQuery(Schema):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# --- Generations -----------------------------------------------------------------------------


def _base(request: HttpRequest) -> str:
    return settings.STUDIO_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def _generation_qs() -> Any:
    return Generation.objects.select_related(
        "asset", "campaign", "batch", "template_version"
    )


def _references(caller: Caller, codes: list[UUID]) -> dict[str, ReferenceImage]:
    found = {
        str(r.code): r
        for r in ReferenceImage.objects.filter(
            workspace=caller.workspace, code__in=codes
        )
    }
    for code in codes:
        if str(code) not in found:
            raise Problem(404, "not_found", f"No reference {code} here.")
    return found


def _create_generation(caller: Caller, payload: GenerationIn) -> Generation:
    require(caller, Role.EDITOR)
    workspace = caller.workspace
    campaign = None
    if payload.campaign is not None:
        campaign = get_object_or_404(
            Campaign.objects.select_related("brand"),
            workspace=workspace,
            code=payload.campaign,
        )
    version = None
    brand = campaign.brand if campaign else None
    if payload.template_version is not None:
        version = get_object_or_404(
            TemplateVersion.objects.select_related("template__brand"),
            workspace=workspace,
            code=payload.template_version,
        )
        brand = version.template.brand
        if campaign is not None and campaign.brand_id != brand.pk:
            raise Problem(
                422,
                "validation",
                "The campaign and the template are of different brands.",
            )
        slots = _references(caller, list(payload.reference_slots.values()))
        try:
            rendered = template_version_render(
                version=version,
                values=payload.variables,
                brand=BrandKit.from_brand(brand),
                filled_slots=list(payload.reference_slots),
            )
        except PromptError as exc:
            raise Problem(422, "validation", str(exc)) from exc
        if not rendered.can_dispatch:
            raise Problem(
                422,
                "validation",
                " ".join(p.message for p in rendered.dispatch_problems),
            )
        prompt = rendered.text
        references = [
            {
                "code": str(payload.reference_slots[name]),
                "role": slots[str(payload.reference_slots[name])].role,
                "name": name,
            }
            for name in rendered.reference_order
        ]
    else:
        prompt = payload.prompt or ""
        refs = _references(caller, payload.references)
        references = [
            {"code": str(code), "role": refs[str(code)].role}
            for code in payload.references
        ]
    return engine_create.generation_create(
        workspace=workspace,
        backend=payload.route or payload.backend or "",
        fallback=payload.fallbacks,
        model=payload.model,
        prompt=prompt,
        width=payload.width,
        height=payload.height,
        seed=payload.seed,
        references=references,
        created_by=caller.user,
        campaign=campaign,
        brand=brand,
        template_version=version,
        owner_key=f"api:{caller.token.code}",
    )


def _generation_data(caller: Caller, code: Any, base: str) -> dict[str, Any]:
    generation = get_object_or_404(
        _generation_qs(), workspace=caller.workspace, code=code
    )
    return rep.generation(generation, base=base)


async def _maybe_wait(
    request: HttpRequest, response: HttpResponse, generation_id: int
) -> None:
    seconds = requested_wait(request)
    if not seconds:
        return

    @sync_to_async
    def is_terminal() -> bool:
        try:
            state = (
                Generation.objects.filter(pk=generation_id)
                .values_list("state", flat=True)
                .first()
            )
        finally:
            # A waiting call must not keep a database connection for its whole wait (200
            # waiters would hold 200 idle PostgreSQL connections): give it back after each read.
            # Inside a transaction (a test's, or an atomic request) the connection stays.
            if not connection.in_atomic_block:
                connection.close()
        return state in TERMINAL_STATES

    await wait_until(generation_id, seconds, is_terminal)
    response["Preference-Applied"] = f"wait={seconds}"


@router.post(
    "/generations",
    response={201: GenerationOut, **ERRORS},
    summary="Create a generation (Prefer: wait=N answers when it is done, N <= 60)",
)
@decorate_view(idempotent)
async def generation_create(
    request: HttpRequest, response: HttpResponse, payload: GenerationIn
) -> Status:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    generation = await sync_to_async(_create_generation)(caller, payload)
    await _maybe_wait(request, response, generation.pk)
    data = await sync_to_async(_generation_data)(
        caller, generation.code, _base(request)
    )
    return Status(201, data)


@router.get(
    "/generations/{code}",
    response={200: GenerationOut, **ERRORS},
    summary="One generation: state, cost, timings, the image's URL (Prefer: wait=N)",
)
async def generation_detail(
    request: HttpRequest, response: HttpResponse, code: UUID
) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    data = await sync_to_async(_generation_data)(caller, code, _base(request))
    if not data["terminal"] and requested_wait(request):
        pk = await sync_to_async(
            lambda: Generation.objects.values_list("pk", flat=True).get(code=code)
        )()
        await _maybe_wait(request, response, pk)
        data = await sync_to_async(_generation_data)(caller, code, _base(request))
    return data


class GenerationFilter(ListQuery):
    batch: UUID | None = None
    state: str | None = Field(default=None, max_length=20)


@router.get(
    "/generations",
    response={200: GenerationPage, **ERRORS},
    summary="List generations, newest first",
)
def generation_list(request: HttpRequest, q: Query[GenerationFilter]) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    qs = _generation_qs().filter(workspace=caller.workspace)
    if q.batch is not None:
        qs = qs.filter(batch=_batch(caller, q.batch))
    if q.state is not None:
        if q.state not in {s for s, _ in Generation._meta.get_field("state").choices}:
            raise Problem(422, "validation", f"“{q.state}” is not a generation state.")
        qs = qs.filter(state=q.state)
    base = _base(request)
    return page(
        qs,
        cursor=q.cursor,
        limit=q.limit,
        render=lambda g: rep.generation(g, base=base),
        field="queued_at",
    )


# --- Batches ---------------------------------------------------------------------------------


def _batch(caller: Caller, code: UUID) -> Batch:
    return get_object_or_404(
        Batch.objects.select_related("campaign", "template_version"),
        workspace=caller.workspace,
        code=code,
    )


def _progress(batch: Batch) -> dict[str, Any]:
    p = batch_progress(batch=batch)
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


def _spec(payload: BatchIn, version: TemplateVersion) -> BatchSpec:
    try:
        targets = tuple(Target.parse(t) for t in payload.targets)
    except ValueError as exc:
        raise Problem(422, "validation", str(exc)) from exc
    order = list(version.variables)
    if payload.matrix is not None:
        names = sorted(
            payload.matrix,
            key=lambda n: order.index(n) if n in order else len(order),
        )
        matrix = tuple((n, tuple(payload.matrix[n])) for n in names)
        rows: tuple[Row, ...] = ()
        mode = MATRIX
    else:
        matrix, mode = (), ROWS
        rows = tuple(Row(i + 2, dict(r)) for i, r in enumerate(payload.rows or ()))
    seeds = (
        Seeds(mode=FIXED, values=tuple(payload.seeds.values))
        if payload.seeds.values is not None
        else Seeds(
            mode=RANDOM,
            count=payload.seeds.count or 1,
            rng_seed=random.randint(0, 2**31),
        )
    )
    return BatchSpec(
        mode=mode,
        matrix=matrix,
        rows=rows,
        seeds=seeds,
        targets=targets,
        sizes=tuple(Size(s.width, s.height) for s in payload.sizes),
        references={k: str(v) for k, v in payload.references.items()},
        merge_brand=payload.merge_brand,
    )


def _create_batch(caller: Caller, payload: BatchIn) -> Batch:
    require(caller, Role.EDITOR)
    campaign = get_object_or_404(
        Campaign, workspace=caller.workspace, code=payload.campaign
    )
    version = get_object_or_404(
        TemplateVersion.objects.select_related("template"),
        workspace=caller.workspace,
        code=payload.template_version,
    )
    _references(caller, list(payload.references.values()))
    spec = _spec(payload, version)
    if spec.count > max_batch_size():
        raise Problem(
            422,
            "validation",
            f"That is {spec.count} variants; a batch makes at most {max_batch_size()}.",
        )
    return batch_services.batch_create(
        campaign=campaign,
        version=version,
        spec=spec,
        user=caller.user,
        name=payload.name,
    )


@router.post(
    "/batches",
    response={201: BatchOut, **ERRORS},
    summary="Create and dispatch a batch from a template version (matrix or rows)",
)
@decorate_view(idempotent)
def batch_create(request: HttpRequest, payload: BatchIn) -> Status:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    batch = _create_batch(caller, payload)
    batch = _batch(caller, batch.code)
    return Status(201, rep.batch(batch, _progress(batch)))


@router.get("/batches", response={200: BatchPage, **ERRORS}, summary="List batches")
def batch_list(request: HttpRequest, q: Query[ListQuery]) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    qs = Batch.objects.filter(workspace=caller.workspace).select_related(
        "campaign", "template_version"
    )
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.batch)


@router.get(
    "/batches/{code}",
    response={200: BatchOut, **ERRORS},
    summary="One batch with its progress",
)
def batch_detail(request: HttpRequest, code: UUID) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    batch = batch_sync_state(batch=_batch(caller, code))
    return rep.batch(batch, _progress(batch))


@router.post(
    "/batches/{code}/cancel",
    response={200: CancelOut, **ERRORS},
    summary="Cancel what of a batch has not finished",
)
def batch_cancel(request: HttpRequest, code: UUID) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    require(caller, Role.EDITOR)
    batch = _batch(caller, code)
    canceled = batch_services.batch_cancel(batch=batch)
    batch = _batch(caller, code)
    return {"canceled": canceled, "batch": rep.batch(batch, _progress(batch))}


# --- Assets ----------------------------------------------------------------------------------


class AssetQuery(Schema):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    brand: UUID | None = None
    campaign: UUID | None = None
    batch: UUID | None = None
    status: str | None = None
    backend: str | None = None
    model: str | None = None
    template: UUID | None = None
    version: int | None = Field(default=None, ge=1)
    ref: UUID | None = None
    tag: str | None = Field(default=None, max_length=40)
    flag: str | None = Field(
        default=None,
        max_length=40,
        description="brand-check flag: needs-review, off-palette, text-mismatch, logo-missing, product-missing",
    )
    starred: bool = False
    since: str | None = None
    until: str | None = None
    var: list[str] = Field(default_factory=list, max_length=10)
    sort: str | None = None


def _asset(caller: Caller, code: UUID) -> Asset:
    return get_object_or_404(
        Asset.objects.select_related("generation", "campaign", "batch", "brand_check"),
        workspace=caller.workspace,
        code=code,
    )


@router.get(
    "/assets",
    response={200: AssetPage, **ERRORS},
    summary="List assets with the gallery's filters and sorts",
)
def asset_list(request: HttpRequest, q: Query[AssetQuery]) -> dict:
    from django.http import QueryDict

    caller: Caller = request.auth  # type: ignore[attr-defined]
    query = QueryDict(mutable=True)
    for name in ("status", "backend", "model", "tag", "since", "until", "sort"):
        if getattr(q, name):
            query[name] = getattr(q, name)
    if q.flag:
        if q.flag not in gallery.FLAG_FILTERS:
            choices = ", ".join(gallery.FLAG_FILTERS)
            raise Problem(422, "validation", f"flag is one of: {choices}.")
        query["flag"] = q.flag
    for name in ("template", "ref"):
        if getattr(q, name):
            query[name] = str(getattr(q, name))
    if q.version is not None:
        query["version"] = str(q.version)
    if q.starred:
        query["starred"] = "1"
    form = gallery.GalleryFilterForm(query)
    if not form.is_valid():
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        raise Problem(422, "validation", detail)
    for item in q.var:
        name, sep, value = item.partition("=")
        if not sep or not gallery.NAME_RE.match(name.strip()):
            raise Problem(422, "validation", "var is name=value.")
        query.appendlist("var", item)
    scope = gallery.Scope(
        workspace=caller.workspace,
        brand=get_object_or_404(Brand, workspace=caller.workspace, code=q.brand)
        if q.brand
        else None,
        campaign=get_object_or_404(
            Campaign, workspace=caller.workspace, code=q.campaign
        )
        if q.campaign
        else None,
        batch=_batch(caller, q.batch) if q.batch else None,
    )
    filters = gallery.Filters.from_query(query)
    after = ""
    if q.cursor:
        after = _cursor_text(q.cursor)
        if gallery._parse_cursor(after, filters.sort_spec) is None:
            raise Problem(
                422, "validation", "cursor is not a cursor this API handed out."
            )
    result = gallery.gallery_page(
        scope=scope, filters=filters, after=after, size=q.limit
    )
    base = _base(request)
    return {
        "items": [rep.asset(a, base=base) for a in result.assets],
        "next_cursor": _cursor_token(result.next_cursor)
        if result.next_cursor
        else None,
    }


def _cursor_token(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode()


def _cursor_text(token: str) -> str:
    import base64
    import binascii

    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decode("!")  # raises the same 422 as every other list
        raise


@router.get("/assets/{code}", response={200: AssetOut, **ERRORS}, summary="One asset")
def asset_detail(request: HttpRequest, code: UUID) -> dict:
    return rep.asset(_asset(request.auth, code), base=_base(request))  # type: ignore[arg-type]


def _decide(request: HttpRequest, code: UUID, status: str, comment: str) -> dict:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    asset = _asset(caller, code)
    review.asset_review(
        asset=asset, actor=caller.user, to_status=status, comment=comment
    )
    return rep.asset(_asset(caller, code), base=_base(request))


@router.post(
    "/assets/{code}/approve",
    response={200: AssetOut, **ERRORS},
    summary="Approve (approver role or higher)",
)
def asset_approve(request: HttpRequest, code: UUID, payload: ReviewIn) -> dict:
    return _decide(request, code, ReviewStatus.APPROVED, payload.comment)


@router.post(
    "/assets/{code}/reject",
    response={200: AssetOut, **ERRORS},
    summary="Reject (approver role or higher)",
)
def asset_reject(request: HttpRequest, code: UUID, payload: ReviewIn) -> dict:
    return _decide(request, code, ReviewStatus.REJECTED, payload.comment)


@router.post(
    "/assets/{code}/review",
    response={200: AssetOut, **ERRORS},
    summary="Set any review status (the role rules of the review page apply)",
)
def asset_review(request: HttpRequest, code: UUID, payload: ReviewStatusIn) -> dict:
    return _decide(request, code, payload.status, payload.comment)


@router.post(
    "/assets/{code}/comments",
    response={201: CommentOut, **ERRORS},
    summary="Comment on an asset (editor role or higher)",
)
@decorate_view(idempotent)
def asset_comment(request: HttpRequest, code: UUID, payload: CommentIn) -> Status:
    caller: Caller = request.auth  # type: ignore[attr-defined]
    asset = _asset(caller, code)
    comment = review.comment_add(asset=asset, author=caller.user, body=payload.body)
    return Status(
        201,
        {
            "id": comment.pk,
            "asset": str(asset.code),
            "author": caller.user.username,
            "body": comment.body,
            "created_at": comment.created_at,
        },
    )


def _serve(asset: Asset) -> HttpResponse:
    return serve_private_file(
        asset.file,
        content_type=asset.content_type,
        filename=f"{asset.code}.{asset.format or 'img'}",
        max_age=3600,
    )


@router.get(
    "/assets/{code}/file",
    response={200: None, **ERRORS},
    url_name="asset_file",
    summary="The image file (with the token)",
)
def asset_file(request: HttpRequest, code: UUID) -> HttpResponse:
    return _serve(_asset(request.auth, code))  # type: ignore[arg-type]


@router.get(
    "/files/{token}",
    auth=None,
    response={200: None, 404: ProblemOut},
    url_name="asset_signed_file",
    summary="The image file by a signed, expiring URL (no token needed)",
)
def asset_signed_file(request: HttpRequest, token: str) -> HttpResponse:
    return _serve(rep.signed_object(Asset, token, rep.FILE_SALT))
