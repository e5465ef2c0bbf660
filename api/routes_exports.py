"""Asset packs (exports): ask for one from a campaign, a batch or a selection of assets, follow
its progress, download it, cancel it. Every state change goes through exports.services, so the
API asks for exactly the packs the Exports page does (same selection, presets, formats, checks).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from ninja.decorators import decorate_view

from api import representations as rep
from api.auth import ApiRequest, require
from api.idempotency import idempotent
from api.pagination import page
from api.problems import Problem
from api.schemas import (
    ERRORS,
    ExportCancelOut,
    ExportIn,
    ExportOut,
    ExportPage,
    ListQuery,
)
from api.schemas import Problem as ProblemOut
from api.tokens import Caller
from campaigns.models import Campaign
from exports.models import ExportPack, PackState
from exports.services import export_pack_cancel, export_pack_request
from generation.models import Asset, Batch
from studio.models import Role
from studio.private_files import serve_private_file

router = Router(tags=["exports"])


def _pack(caller: Caller, code: UUID) -> ExportPack:
    return get_object_or_404(
        ExportPack.objects.for_workspace(caller.workspace), code=code
    )


def _selection(caller: Caller, payload: ExportIn) -> dict[str, Any]:
    workspace = caller.workspace
    if payload.campaign is not None:
        return {
            "campaign": get_object_or_404(
                Campaign.objects.select_related("brand"),
                workspace=workspace,
                code=payload.campaign,
            )
        }
    if payload.batch is not None:
        return {
            "batch": get_object_or_404(
                Batch.objects.select_related("campaign", "brand"),
                workspace=workspace,
                code=payload.batch,
            )
        }
    codes = list(dict.fromkeys(payload.assets or []))
    found = list(Asset.objects.filter(workspace=workspace, code__in=codes))
    if len(found) != len(codes):
        missing = set(codes) - {a.code for a in found}
        raise Problem(
            404, "not_found", f"No asset {sorted(map(str, missing))[0]} here."
        )
    return {"assets": found}


@router.post(
    "/exports",
    response={201: ExportOut, **ERRORS},
    summary="Ask for an asset pack (a campaign, a batch or assets; presets and formats)",
)
@decorate_view(idempotent)
def export_create(request: ApiRequest, payload: ExportIn) -> Status:
    caller = request.auth
    require(caller, Role.EDITOR)
    pack = export_pack_request(
        workspace=caller.workspace,
        user=caller.user,
        preset_names=payload.presets,
        formats=payload.formats,
        all_statuses=payload.all_statuses,
        **_selection(caller, payload),
    )
    return Status(
        201, rep.export_pack(_pack(caller, pack.code), base=rep.base_url(request))
    )


@router.get(
    "/exports", response={200: ExportPage, **ERRORS}, summary="List asset packs"
)
def export_list(request: ApiRequest, q: Query[ListQuery]) -> dict:
    caller = request.auth
    base = rep.base_url(request)
    return page(
        ExportPack.objects.for_workspace(caller.workspace),
        cursor=q.cursor,
        limit=q.limit,
        render=lambda p: rep.export_pack(p, base=base),
    )


@router.get(
    "/exports/{code}",
    response={200: ExportOut, **ERRORS},
    summary="One asset pack: state, progress, download URL when ready",
)
def export_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.export_pack(_pack(request.auth, code), base=rep.base_url(request))


@router.post(
    "/exports/{code}/cancel",
    response={200: ExportCancelOut, **ERRORS},
    summary="Cancel a queued or building pack",
)
def export_cancel(request: ApiRequest, code: UUID) -> dict:
    caller = request.auth
    require(caller, Role.EDITOR)
    canceled = export_pack_cancel(pack=_pack(caller, code))
    return {
        "canceled": canceled,
        "export": rep.export_pack(_pack(caller, code), base=rep.base_url(request)),
    }


def _serve(pack: ExportPack) -> HttpResponseBase:
    if pack.state != PackState.SUCCEEDED or not pack.file.name:
        raise Problem(404, "not_found", f"This pack is {pack.state}, not ready.")
    return serve_private_file(
        pack.file,
        content_type="application/zip",
        filename=pack.download_name,
        max_age=0,
        as_attachment=True,
    )


@router.get(
    "/exports/{code}/file",
    response={200: None, **ERRORS},
    url_name="export_file",
    summary="The pack's zip (with the token)",
)
def export_file(request: ApiRequest, code: UUID) -> HttpResponseBase:
    return _serve(_pack(request.auth, code))


@router.get(
    "/export-files/{token}",
    auth=None,
    response={200: None, 404: ProblemOut},
    url_name="export_signed_file",
    summary="The pack's zip by a signed, expiring URL (no token needed)",
)
def export_signed_file(request: HttpRequest, token: str) -> HttpResponseBase:
    return _serve(rep.signed_object(ExportPack, token, rep.EXPORT_SALT))
