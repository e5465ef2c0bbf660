"""Brands, reference images, campaigns, templates and their versions."""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from ninja import File, Form, Query, Router, Status, UploadedFile
from ninja.decorators import decorate_view

from api import representations as rep
from api.auth import ApiRequest, require
from api.idempotency import idempotent
from api.pagination import page
from api.problems import Problem
from api.schemas import (
    ERRORS,
    BrandOut,
    BrandPage,
    CampaignOut,
    CampaignPage,
    ListQuery,
    ReferenceOut,
    ReferencePage,
    TemplateOut,
    TemplatePage,
    VersionIn,
    VersionOut,
    VersionPage,
)
from api.schemas import Problem as ProblemOut
from campaigns import references as reference_services
from campaigns.models import (
    Brand,
    Campaign,
    PromptTemplate,
    ReferenceImage,
    ReferenceRole,
    TemplateVersion,
)
from campaigns.prompt_templates import template_version_create
from studio.models import Role

router = Router(tags=["catalog"])


class BrandFilter(ListQuery):
    brand: UUID | None = None


def _brand(request: ApiRequest, code: UUID) -> Brand:
    return get_object_or_404(Brand, workspace=request.auth.workspace, code=code)


@router.get("/brands", response={200: BrandPage, **ERRORS}, summary="List brands")
def brand_list(request: ApiRequest, q: Query[ListQuery]) -> dict:
    qs = Brand.objects.filter(workspace=request.auth.workspace)
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.brand)


@router.get("/brands/{code}", response={200: BrandOut, **ERRORS}, summary="One brand")
def brand_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.brand(_brand(request, code))


@router.get(
    "/references", response={200: ReferencePage, **ERRORS}, summary="List references"
)
def reference_list(request: ApiRequest, q: Query[BrandFilter]) -> dict:
    qs = ReferenceImage.objects.filter(workspace=request.auth.workspace).select_related(
        "brand"
    )
    if q.brand is not None:
        qs = qs.filter(brand=_brand(request, q.brand))
    return page(
        qs.prefetch_related("tags"),
        cursor=q.cursor,
        limit=q.limit,
        render=rep.reference,
    )


@router.get(
    "/references/{code}",
    response={200: ReferenceOut, **ERRORS},
    summary="One reference",
)
def reference_detail(request: ApiRequest, code: UUID) -> dict:
    ref = get_object_or_404(
        ReferenceImage.objects.select_related("brand"),
        workspace=request.auth.workspace,
        code=code,
    )
    return rep.reference(ref)


@router.post(
    "/references",
    response={201: ReferenceOut, 409: ProblemOut, 413: ProblemOut, **ERRORS},
    summary="Upload a reference image (multipart; the same checks as the library page)",
)
@decorate_view(idempotent)
def reference_upload(
    request: ApiRequest,
    file: File[UploadedFile],
    brand: Form[UUID],
    role: Form[str],
    tags: Form[str] = "",
    title: Form[str] = "",
) -> Status:
    require(request.auth, Role.EDITOR)
    the_brand = _brand(request, brand)
    if role not in ReferenceRole.values:
        raise Problem(
            422, "validation", f"role must be one of {', '.join(ReferenceRole.values)}."
        )
    if len(tags) > 500 or len(title) > 200:
        raise Problem(422, "validation", "tags or title is too long.")
    names = reference_services.normalise_tags(tags.split(","))
    try:
        ref = reference_services.reference_create(
            brand=the_brand,
            uploaded_file=file,
            user=request.auth.user,
            role=role,
            tags=names,
            title=title,
        )
    except reference_services.ImageRejected as exc:
        raise Problem(422, "validation", exc.message) from exc
    except reference_services.DuplicateReference as exc:
        raise Problem(
            409,
            "conflict",
            "This image is already in the brand's library.",
            existing=str(exc.existing.code),
        ) from exc
    return Status(201, rep.reference(ref))


@router.get(
    "/campaigns", response={200: CampaignPage, **ERRORS}, summary="List campaigns"
)
def campaign_list(request: ApiRequest, q: Query[BrandFilter]) -> dict:
    qs = Campaign.objects.filter(workspace=request.auth.workspace).select_related(
        "brand"
    )
    if q.brand is not None:
        qs = qs.filter(brand=_brand(request, q.brand))
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.campaign)


@router.get(
    "/campaigns/{code}", response={200: CampaignOut, **ERRORS}, summary="One campaign"
)
def campaign_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.campaign(
        get_object_or_404(
            Campaign.objects.select_related("brand"),
            workspace=request.auth.workspace,
            code=code,
        )
    )


def _template(request: ApiRequest, code: UUID) -> PromptTemplate:
    return get_object_or_404(
        PromptTemplate.objects.select_related("brand", "campaign"),
        workspace=request.auth.workspace,
        code=code,
    )


@router.get(
    "/templates", response={200: TemplatePage, **ERRORS}, summary="List templates"
)
def template_list(request: ApiRequest, q: Query[BrandFilter]) -> dict:
    qs = PromptTemplate.objects.filter(workspace=request.auth.workspace).select_related(
        "brand", "campaign"
    )
    if q.brand is not None:
        qs = qs.filter(brand=_brand(request, q.brand))
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.template)


@router.get(
    "/templates/{code}", response={200: TemplateOut, **ERRORS}, summary="One template"
)
def template_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.template(_template(request, code))


@router.get(
    "/templates/{code}/versions",
    response={200: VersionPage, **ERRORS},
    summary="A template's versions, newest first",
)
def version_list(request: ApiRequest, code: UUID, q: Query[ListQuery]) -> dict:
    template = _template(request, code)
    qs = TemplateVersion.objects.filter(template=template).select_related("template")
    return page(qs, cursor=q.cursor, limit=q.limit, render=rep.version)


@router.post(
    "/templates/{code}/versions",
    response={201: VersionOut, 409: ProblemOut, **ERRORS},
    summary="Save a new version of a template",
)
@decorate_view(idempotent)
def version_create(request: ApiRequest, code: UUID, payload: VersionIn) -> Status:
    require(request.auth, Role.EDITOR)
    template = _template(request, code)
    try:
        version = template_version_create(
            template=template,
            kind=payload.kind,
            body=payload.body,
            reference_slots=[s.model_dump() for s in payload.reference_slots],
            parameters=payload.parameters,
            change_note=payload.change_note,
            author=request.auth.user,
            based_on=payload.based_on,
        )
    except ValidationError as exc:
        if getattr(exc, "code", None) == "stale":
            raise Problem(409, "conflict", " ".join(exc.messages)) from exc
        raise
    return Status(201, rep.version(version))


@router.get(
    "/template-versions/{code}",
    response={200: VersionOut, **ERRORS},
    summary="One template version",
)
def version_detail(request: ApiRequest, code: UUID) -> dict:
    return rep.version(
        get_object_or_404(
            TemplateVersion.objects.select_related("template"),
            workspace=request.auth.workspace,
            code=code,
        )
    )
