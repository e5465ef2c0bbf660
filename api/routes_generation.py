"""Generations (with `Prefer: wait=N`), batches, assets and their review, files.

The routes only read the request and shape the answer: what a POST body becomes is
api/generation_requests.py and api/batch_requests.py, the asset list's query api/asset_search.py,
the caller's objects by code api/lookups.py.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from ninja.decorators import decorate_view
from pydantic import Field

from api import lookups
from api import representations as rep
from api.asset_search import AssetQuery, asset_page
from api.auth import ApiRequest, require
from api.batch_requests import batch_from_request
from api.generation_requests import generation_from_request
from api.idempotency import idempotent
from api.pagination import page
from api.problems import Problem
from api.schemas import (
    ERRORS,
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
    ListQuery,
    ReviewIn,
    ReviewStatusIn,
)
from api.schemas import Problem as ProblemOut
from api.tokens import Caller
from api.waiting import requested_wait, wait_for_generation
from generation import review
from generation.batches import services as batch_services
from generation.batches.services import batch_sync_state
from generation.models import Asset, Batch, Generation, GenerationState, ReviewStatus
from studio.models import Role
from studio.private_files import serve_private_file

router = Router(tags=["generation"])


# --- Generations -----------------------------------------------------------------------------


def _generation_data(caller: Caller, code: Any, base: str) -> dict[str, Any]:
    generation = get_object_or_404(
        lookups.generations(), workspace=caller.workspace, code=code
    )
    return rep.generation(generation, base=base)


@router.post(
    "/generations",
    response={201: GenerationOut, **ERRORS},
    summary="Create a generation (Prefer: wait=N answers when it is done, N <= 60)",
)
@decorate_view(idempotent)
async def generation_create(
    request: ApiRequest, response: HttpResponse, payload: GenerationIn
) -> Status:
    caller = request.auth
    generation = await sync_to_async(generation_from_request)(caller, payload)
    await wait_for_generation(request, response, generation.pk)
    data = await sync_to_async(_generation_data)(
        caller, generation.code, rep.base_url(request)
    )
    return Status(201, data)


@router.get(
    "/generations/{code}",
    response={200: GenerationOut, **ERRORS},
    summary="One generation: state, cost, timings, the image's URL (Prefer: wait=N)",
)
async def generation_detail(
    request: ApiRequest, response: HttpResponse, code: UUID
) -> dict:
    caller = request.auth
    data = await sync_to_async(_generation_data)(caller, code, rep.base_url(request))
    if not data["terminal"] and requested_wait(request):
        pk = await sync_to_async(
            lambda: Generation.objects.values_list("pk", flat=True).get(code=code)
        )()
        await wait_for_generation(request, response, pk)
        data = await sync_to_async(_generation_data)(
            caller, code, rep.base_url(request)
        )
    return data


class GenerationFilter(ListQuery):
    batch: UUID | None = None
    state: str | None = Field(default=None, max_length=20)


@router.get(
    "/generations",
    response={200: GenerationPage, **ERRORS},
    summary="List generations, newest first",
)
def generation_list(request: ApiRequest, q: Query[GenerationFilter]) -> dict:
    caller = request.auth
    qs = lookups.generations().filter(workspace=caller.workspace)
    if q.batch is not None:
        qs = qs.filter(batch=lookups.batch(caller, q.batch))
    if q.state is not None:
        if q.state not in GenerationState.values:
            raise Problem(422, "validation", f"“{q.state}” is not a generation state.")
        qs = qs.filter(state=q.state)
    base = rep.base_url(request)
    return page(
        qs,
        cursor=q.cursor,
        limit=q.limit,
        render=lambda g: rep.generation(g, base=base),
        field="queued_at",
    )


# --- Batches ---------------------------------------------------------------------------------


@router.post(
    "/batches",
    response={201: BatchOut, **ERRORS},
    summary="Create and dispatch a batch from a template version (matrix or rows)",
)
@decorate_view(idempotent)
def batch_create(request: ApiRequest, payload: BatchIn) -> Status:
    caller = request.auth
    batch = batch_from_request(caller, payload)
    batch = lookups.batch(caller, batch.code)
    return Status(201, rep.batch(batch, rep.batch_progress(batch)))


@router.get("/batches", response={200: BatchPage, **ERRORS}, summary="List batches")
def batch_list(request: ApiRequest, q: Query[ListQuery]) -> dict:
    caller = request.auth
    qs = Batch.objects.filter(workspace=caller.workspace).select_related(
        "campaign", "template_version"
    )
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.batch)


@router.get(
    "/batches/{code}",
    response={200: BatchOut, **ERRORS},
    summary="One batch with its progress",
)
def batch_detail(request: ApiRequest, code: UUID) -> dict:
    caller = request.auth
    batch = batch_sync_state(batch=lookups.batch(caller, code))
    return rep.batch(batch, rep.batch_progress(batch))


@router.post(
    "/batches/{code}/cancel",
    response={200: CancelOut, **ERRORS},
    summary="Cancel what of a batch has not finished",
)
def batch_cancel(request: ApiRequest, code: UUID) -> dict:
    caller = request.auth
    require(caller, Role.EDITOR)
    batch = lookups.batch(caller, code)
    canceled = batch_services.batch_cancel(batch=batch)
    batch = lookups.batch(caller, code)
    return {"canceled": canceled, "batch": rep.batch(batch, rep.batch_progress(batch))}


# --- Assets ----------------------------------------------------------------------------------


@router.get(
    "/assets",
    response={200: AssetPage, **ERRORS},
    summary="List assets with the gallery's filters and sorts",
)
def asset_list(request: ApiRequest, q: Query[AssetQuery]) -> dict:
    caller = request.auth
    return asset_page(caller, q, base=rep.base_url(request))


@router.get("/assets/{code}", response={200: AssetOut, **ERRORS}, summary="One asset")
def asset_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.asset(lookups.asset(request.auth, code), base=rep.base_url(request))


def _decide(request: ApiRequest, code: UUID, status: str, comment: str) -> dict:
    caller = request.auth
    asset = lookups.asset(caller, code)
    review.asset_review(
        asset=asset, actor=caller.user, to_status=status, comment=comment
    )
    return rep.asset(lookups.asset(caller, code), base=rep.base_url(request))


@router.post(
    "/assets/{code}/approve",
    response={200: AssetOut, **ERRORS},
    summary="Approve (approver role or higher)",
)
def asset_approve(request: ApiRequest, code: UUID, payload: ReviewIn) -> dict:
    return _decide(request, code, ReviewStatus.APPROVED, payload.comment)


@router.post(
    "/assets/{code}/reject",
    response={200: AssetOut, **ERRORS},
    summary="Reject (approver role or higher)",
)
def asset_reject(request: ApiRequest, code: UUID, payload: ReviewIn) -> dict:
    return _decide(request, code, ReviewStatus.REJECTED, payload.comment)


@router.post(
    "/assets/{code}/review",
    response={200: AssetOut, **ERRORS},
    summary="Set any review status (the role rules of the review page apply)",
)
def asset_review(request: ApiRequest, code: UUID, payload: ReviewStatusIn) -> dict:
    return _decide(request, code, payload.status, payload.comment)


@router.post(
    "/assets/{code}/comments",
    response={201: CommentOut, **ERRORS},
    summary="Comment on an asset (editor role or higher)",
)
@decorate_view(idempotent)
def asset_comment(request: ApiRequest, code: UUID, payload: CommentIn) -> Status:
    caller = request.auth
    asset = lookups.asset(caller, code)
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


def _serve(asset: Asset) -> HttpResponseBase:
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
def asset_file(request: ApiRequest, code: UUID) -> HttpResponseBase:
    return _serve(lookups.asset(request.auth, code))


@router.get(
    "/files/{token}",
    auth=None,
    response={200: None, 404: ProblemOut},
    url_name="asset_signed_file",
    summary="The image file by a signed, expiring URL (no token needed)",
)
def asset_signed_file(request: HttpRequest, token: str) -> HttpResponseBase:
    return _serve(rep.signed_object(Asset, token, rep.FILE_SALT))
