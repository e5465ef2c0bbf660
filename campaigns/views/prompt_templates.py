"""Prompt templates: list, create, read any version, history, diff, save a new version, try it.

Everyone in the workspace reads templates and uses the "try it" preview (it changes nothing);
editors and up create templates and save versions. Other workspaces' templates answer 404.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, OuterRef, Subquery
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from campaigns import prompt_templates as services
from campaigns import signals
from campaigns.forms_templates import (
    DEFAULT_PARAMETERS,
    PreviewForm,
    TemplateCreateForm,
    TemplateVersionForm,
    parameters_as_text,
)
from campaigns.models import Brand, Campaign, PromptTemplate, TemplateVersion
from campaigns.prompting import (
    BrandKit,
    Problem,
    PromptError,
    RenderedPrompt,
    check_template,
    placeholder_parts,
)
from studio.form_errors import surface_hidden_errors
from studio.http import StudioRequest, wants_partial
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required

LIST_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 50


def _template_for_user(request: StudioRequest, code: UUID) -> PromptTemplate:
    return get_in_workspace(
        request, PromptTemplate.objects.select_related("brand", "campaign"), code=code
    )


def _versions(template: PromptTemplate) -> Any:
    # Versions carry their workspace too: filtering on it keeps a mistake elsewhere from leaking.
    return TemplateVersion.objects.filter(
        template=template, workspace_id=template.workspace_id
    )


def _version_or_404(
    template: PromptTemplate, number: int | str | None
) -> TemplateVersion:
    if number in (None, ""):
        version = (
            _versions(template).select_related("author").order_by("-number").first()
        )
        if version is None:
            raise Http404("This template has no versions.")
        return version
    try:
        return _versions(template).select_related("author").get(number=int(number))  # type: ignore[arg-type]
    except (TemplateVersion.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such version.") from exc


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def template_list(request: StudioRequest) -> HttpResponse:
    brands = Brand.objects.filter(workspace=request.workspace)
    latest = TemplateVersion.objects.filter(template=OuterRef("pk")).order_by("-number")
    templates = (
        PromptTemplate.objects.filter(workspace=request.workspace)
        .select_related("brand", "campaign")
        .annotate(
            version_count=Count("versions"),
            latest_number=Max("versions__number"),
            latest_kind=Subquery(latest.values("kind")[:1]),
        )
        .order_by("brand__name", "name", "pk")
    )
    brand = None
    if brand_code := _uuid(request.GET.get("brand")):
        brand = brands.filter(code=brand_code).first()
    if request.GET.get("brand"):
        # An unknown brand shows nothing rather than everything.
        templates = templates.filter(brand=brand) if brand else templates.none()
    page = Paginator(templates, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    assert request.membership is not None
    context = {
        "brands": brands,
        "brand": brand,
        "page": page,
    }
    name = "campaigns/prompt_templates/list.html"
    return render(
        request, f"{name}#template_table" if wants_partial(request) else name, context
    )


@require_http_methods(["GET", "POST"])
@member_required()
def template_create(request: StudioRequest) -> HttpResponse:
    # The rule the "New template" buttons read (studio/permissions.py).
    require(request, "template.create")
    assert request.workspace is not None
    initial: dict[str, Any] = {"parameters": parameters_as_text(DEFAULT_PARAMETERS)}
    # ?campaign= or ?brand= preselects, e.g. from a campaign's or a brand's page.
    campaign_code, brand_code = (
        _uuid(request.GET.get("campaign")),
        _uuid(request.GET.get("brand")),
    )
    campaigns = Campaign.objects.filter(workspace=request.workspace)
    if campaign_code and (campaign := campaigns.filter(code=campaign_code).first()):
        initial.update(campaign=campaign, brand=campaign.brand_id)
    elif brand_code and (
        brand := Brand.objects.filter(
            workspace=request.workspace, code=brand_code
        ).first()
    ):
        initial["brand"] = brand
    form = TemplateCreateForm(
        request.POST or None, workspace=request.workspace, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = services.prompt_template_create(
                brand=data["brand"],
                campaign=data["campaign"],
                name=data["name"],
                description=data["description"],
                kind=data["kind"],
                body=data["body"],
                reference_slots=data["reference_slots"],
                parameters=data["parameters"],
                change_note=data["change_note"],
                author=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Template “{template.name}” created as version 1."
            )
            return redirect("campaigns:template-detail", template.code)
    has_brands = Brand.objects.filter(workspace=request.workspace).exists()
    return render(
        request,
        "campaigns/prompt_templates/form.html",
        {"form": form, "template": None, "has_brands": has_brands},
    )


def _detail_context(
    request: StudioRequest,
    template: PromptTemplate,
    version: TemplateVersion,
    *,
    preview_form: PreviewForm | None = None,
    rendered: RenderedPrompt | None = None,
    preview_error: PromptError | None = None,
) -> dict[str, Any]:
    versions = _versions(template)
    latest_number = versions.aggregate(n=Max("number"))["n"]
    try:
        check_warnings = check_template(
            kind=version.kind,
            body=version.body,
            reference_slots=version.reference_slots,
        ).warnings
    except PromptError as exc:  # only possible for rows written around the services
        check_warnings = tuple(exc.messages)
    return {
        "template": template,
        "version": version,
        "is_latest": version.number == latest_number,
        "latest_number": latest_number,
        "body_parts": placeholder_parts(version.body),
        "slots": [
            {**slot, "image": index}
            for index, slot in enumerate(version.reference_slots, start=1)
        ],
        "check_warnings": check_warnings,
        "recent_versions": versions.select_related("author").order_by("-number")[:5],
        "approvals": _approvals(template).get(version.number),
        "preview_form": preview_form or PreviewForm(variables=version.variables),
        "rendered": rendered,
        "preview_error": preview_error,
    }


@require_GET
@member_required()
def template_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    template = _template_for_user(request, code)
    version = _version_or_404(template, None)
    context = _detail_context(request, template, version)
    return render(request, "campaigns/prompt_templates/detail.html", context)


@require_GET
@member_required()
def template_version(request: StudioRequest, code: UUID, number: int) -> HttpResponse:
    template = _template_for_user(request, code)
    version = _version_or_404(template, number)
    context = _detail_context(request, template, version)
    return render(request, "campaigns/prompt_templates/detail.html", context)


@require_POST
@member_required()
def template_preview(request: StudioRequest, code: UUID) -> HttpResponse:
    """Render a version with the posted values; read-only, so viewers may use it too."""
    template = _template_for_user(request, code)
    version = _version_or_404(template, request.POST.get("version"))
    form = PreviewForm(request.POST, variables=version.variables)
    rendered, error = None, None
    if form.is_valid():
        # The kit's words are checked either way; the checkbox only leaves its additions out.
        try:
            rendered = services.template_version_render(
                version=version,
                values=form.values(),
                brand=BrandKit.from_brand(template.brand),
                merge_brand=form.cleaned_data["use_brand"],
            )
        except PromptError as exc:
            error = exc
    else:
        error = PromptError(
            Problem(
                "invalid_value", f"{{{field.label}}}: {message}", str(field.label or "")
            )
            for field in form.variable_fields()
            for message in field.errors
        )
    context = _detail_context(
        request,
        template,
        version,
        preview_form=form,
        rendered=rendered,
        preview_error=error,
    )
    name = "campaigns/prompt_templates/detail.html"
    return render(
        request, f"{name}#preview_result" if wants_partial(request) else name, context
    )


def _approvals(template: PromptTemplate) -> dict[int, Any]:
    # Each version's images by review status, added by generation through a signal (campaigns
    # cannot import generation, the layer above it).
    return signals.page_data(signals.template_page, template=template).get(
        "approvals", {}
    )


@require_GET
@member_required()
def template_versions(request: StudioRequest, code: UUID) -> HttpResponse:
    template = _template_for_user(request, code)
    versions = _versions(template).select_related("author").order_by("-number")
    page = Paginator(versions, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    # Which prompts win: each version's images by review status (asked of generation).
    approvals = _approvals(template)
    page.object_list = list(page.object_list)
    for version in page.object_list:
        version.approvals = approvals.get(version.number)
    return render(
        request,
        "campaigns/prompt_templates/versions.html",
        {"template": template, "page": page},
    )


@require_http_methods(["GET", "POST"])
@member_required()
def template_version_create(request: StudioRequest, code: UUID) -> HttpResponse:
    """Save as a new version: the form starts from the latest version (or ?from=N to restore one)."""
    require(
        request, "template.edit"
    )  # the rule the Save/Restore as new version buttons read
    template = _template_for_user(request, code)
    latest = _version_or_404(template, None)
    start = (
        _version_or_404(template, request.GET.get("from"))
        if request.GET.get("from")
        else latest
    )
    initial = TemplateVersionForm.initial_from(start, latest_number=latest.number)
    if start.number != latest.number:
        initial["change_note"] = f"Restore version {start.number}"
    form = TemplateVersionForm(request.POST or None, initial=initial)
    valid = request.method == "POST" and form.is_valid()
    surface_hidden_errors(form, labels=TemplateVersionForm.HIDDEN_FIELD_LABELS)
    if valid:
        data = form.cleaned_data
        try:
            version = services.template_version_create(
                template=template,
                kind=data["kind"],
                body=data["body"],
                reference_slots=data["reference_slots"],
                parameters=data["parameters"],
                change_note=data["change_note"],
                author=request.user,
                based_on=data["based_on"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved version {version.number}.")
            return redirect("campaigns:template-version", template.code, version.number)
    context = {"form": form, "template": template, "start": start, "latest": latest}
    return render(request, "campaigns/prompt_templates/form.html", context)


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def template_diff(request: StudioRequest, code: UUID) -> HttpResponse:
    """Diff ?from=N&to=M; by default the latest version (or `to`) against the one before it."""
    template = _template_for_user(request, code)
    new = _version_or_404(template, request.GET.get("to"))
    if request.GET.get("from"):
        old: TemplateVersion | None = _version_or_404(template, request.GET["from"])
    else:
        old = (
            _versions(template)
            .filter(number__lt=new.number)
            .select_related("author")
            .order_by("-number")
            .first()
        )
    sections = services.template_version_diff(old=old, new=new)
    context = {
        "template": template,
        "old": old,
        "new": new,
        "sections": sections,
        "unchanged": [section.title for section in sections if not section.changed],
        "numbers": list(
            _versions(template).order_by("-number").values_list("number", flat=True)
        ),
    }
    name = "campaigns/prompt_templates/diff.html"
    return render(
        request, f"{name}#diff_result" if wants_partial(request) else name, context
    )
