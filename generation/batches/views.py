"""Variant batches: list, builder with a live preview, dispatch, the batch page with live progress,
cancel, retry, re-run with one axis changed, and "change one thing" from an asset.

Viewers see batches; editors and up build, dispatch, cancel, retry and re-run (403 otherwise).
Another workspace's batches, templates and campaigns answer 404.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from campaigns.models import Campaign, PromptTemplate, ReferenceImage, TemplateVersion
from generation.batches import progress as progress_services
from generation.batches import services as batch_services
from generation.batches.common import BatchRefused
from generation.batches.forms import (
    HIDDEN_FIELD_LABELS,
    BatchBuilderForm,
    RerunForm,
    VariantForm,
    builder_initial,
    size_presets,
)
from generation.batches.plan import BatchSpec, fix_axes
from generation.batches.services import (
    BatchPreview,
    batch_rerun_with_axis,
    batch_retry_failed,
    batch_sync_state,
)
from generation.batches.targets import target_options
from generation.batches.variants import (
    batch_axes,
    describe_changes,
    spec_from_generation,
    variant_from_asset,
)
from generation.gallery.queries import asset_for_user
from generation.models import Asset, Batch, Generation
from studio.form_errors import surface_hidden_errors
from studio.http import StudioRequest, wants_partial
from studio.models import Role
from studio.tenancy import get_in_workspace, member_required

LIST_PAGE_SIZE = 50
# Thumbnails shown on the batch page (the newest first once a batch is bigger).
THUMBNAIL_LIMIT = 120
BUILDER = "generation/batches/builder.html"
DETAIL = "generation/batches/detail.html"


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def _batch_for_user(request: StudioRequest, code: UUID) -> Batch:
    queryset = Batch.objects.select_related(
        "campaign", "brand", "template_version__template", "created_by", "parent"
    )
    return get_in_workspace(request, queryset, code=code)


def _can_edit(request: StudioRequest) -> bool:
    return request.membership is not None and request.membership.can_edit


@require_GET
@member_required()
def batch_list(request: StudioRequest) -> HttpResponse:
    batches = Batch.objects.filter(workspace=request.workspace).select_related(
        "campaign", "template_version__template", "created_by"
    )
    page = Paginator(batches, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "generation/batches/list.html",
        {"page": page, "can_edit": _can_edit(request)},
    )


# --- The builder ---------------------------------------------------------------------------------


def _version(
    request: StudioRequest, template_code: Any, number: Any
) -> TemplateVersion:
    template = get_in_workspace(
        request,
        PromptTemplate.objects.select_related("brand", "campaign"),
        code=_uuid(str(template_code or "")),
    )
    versions = TemplateVersion.objects.filter(
        template=template, workspace=request.workspace
    ).select_related("template__brand", "template__campaign")
    version = (
        versions.filter(number=int(number)).first()
        if str(number or "").isdigit()
        else versions.order_by("-number").first()
    )
    if version is None:
        raise Http404("No such template version.")
    return version


def _builder_parts(
    request: StudioRequest, version: TemplateVersion, campaign: Campaign | None
) -> dict[str, Any]:
    brand = version.template.brand
    campaigns = list(
        Campaign.objects.filter(workspace=request.workspace, brand=brand).order_by(
            "name"
        )
    )
    if campaign is None or campaign.brand_id != brand.pk:
        campaign = version.template.campaign or (campaigns[0] if campaigns else None)
    references: dict[str, list[ReferenceImage]] = {}
    library = ReferenceImage.objects.filter(brand=brand, workspace=request.workspace)
    for slot in version.reference_slots or ():
        references[slot["name"]] = list(library.filter(role=slot.get("role")))
    return {
        "campaign": campaign,
        "campaigns": campaigns,
        "targets": target_options(workspace=request.workspace),
        "presets": size_presets(campaign=campaign, version=version),
        "references": references,
    }


def _form(
    request: StudioRequest,
    version: TemplateVersion,
    parts: dict[str, Any],
    *,
    data: Any = None,
    files: Any = None,
    initial: dict[str, Any] | None = None,
) -> BatchBuilderForm:
    return BatchBuilderForm(
        data,
        files,
        initial=initial,
        version=version,
        campaigns=parts["campaigns"],
        targets=parts["targets"],
        presets=parts["presets"],
        references=parts["references"],
    )


def _target_groups(form: BatchBuilderForm) -> list[tuple[str, list[Any]]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    labels: dict[str, str] = {}
    for option in form.fields["targets"].choices:
        backend = str(option[0]).split(":", 1)[0]
        labels[backend] = str(option[1]).split(" · ", 1)[0]
    for widget in form["targets"]:
        groups[str(widget.data["value"]).split(":", 1)[0]].append(widget)
    return [(labels[b], widgets) for b, widgets in groups.items()]


def _render_builder(
    request: StudioRequest,
    version: TemplateVersion,
    parts: dict[str, Any],
    form: BatchBuilderForm,
    preview: BatchPreview | None,
    parent: Batch | None = None,
) -> HttpResponse:
    context = {
        "version": version,
        "template": version.template,
        "brand": version.template.brand,
        "campaign": parts["campaign"],
        "campaigns": parts["campaigns"],
        "form": form,
        "preview": preview,
        "target_groups": _target_groups(form),
        "parent": parent,
    }
    return render(
        request, f"{BUILDER}#builder" if wants_partial(request) else BUILDER, context
    )


def _chooser(request: StudioRequest, campaign: Campaign | None) -> HttpResponse:
    templates = PromptTemplate.objects.filter(
        workspace=request.workspace
    ).select_related("brand", "campaign")
    if campaign is not None:
        templates = templates.filter(brand=campaign.brand)
    return render(
        request,
        "generation/batches/choose.html",
        {"templates": templates.order_by("brand__name", "name"), "campaign": campaign},
    )


def _builder_source(
    request: StudioRequest, code: UUID
) -> tuple[TemplateVersion | None, Campaign | None, BatchSpec | None, Batch | None]:
    """?from=<code>: a batch (a re-run: its spec, recorded as the parent) or a generation (a
    remix: its values, seed, model, size and references as a one-variant start)."""
    batch = (
        Batch.objects.filter(workspace=request.workspace, code=code)
        .select_related("campaign", "template_version__template")
        .first()
    )
    if batch is not None:
        return (
            batch.template_version,
            batch.campaign,
            BatchSpec.from_json(batch.spec),
            batch,
        )
    generation = get_in_workspace(
        request,
        Generation.objects.select_related(
            "campaign", "batch", "template_version__template"
        ),
        code=code,
    )
    return (
        generation.template_version,
        generation.campaign,
        spec_from_generation(generation=generation),
        None,
    )


def _builder_page(request: StudioRequest) -> HttpResponse:
    """The builder: ?template=<code>[&version=N][&campaign=<code>], or ?from=<batch or
    generation>; without a template, a list to choose one from."""
    campaign = None
    if campaign_code := _uuid(request.GET.get("campaign")):
        campaign = get_in_workspace(
            request, Campaign.objects.select_related("brand"), code=campaign_code
        )
    source = None
    spec = None
    if from_code := _uuid(request.GET.get("from")):
        version, source_campaign, spec, source = _builder_source(request, from_code)
        if version is None:
            messages.error(request, "That template version no longer exists.")
            return _chooser(request, campaign)
        if spec is not None and (fixes := request.GET.getlist("fix")):
            # A next round from the winners (the results page): decided axes fixed.
            spec, applied = fix_axes(spec, fixes)
            if applied:
                messages.info(
                    request,
                    "Fixed at the winners: "
                    + "; ".join(applied)
                    + ". Add the values of a new axis to vary.",
                )
        campaign = source_campaign or campaign
    elif request.GET.get("template"):
        version = _version(
            request, request.GET.get("template"), request.GET.get("version")
        )
    else:
        return _chooser(request, campaign)
    parts = _builder_parts(request, version, campaign)
    initial = builder_initial(
        version=version,
        campaign=parts["campaign"],
        presets=parts["presets"],
        targets=parts["targets"],
        spec=spec,
    )
    if source is not None:
        initial["parent"] = source.code
    form = _form(request, version, parts, initial=initial)
    preview = None
    if spec is not None and parts["campaign"] is not None:
        preview = batch_services.batch_preview(
            campaign=parts["campaign"], version=version, spec=spec
        )
    return _render_builder(request, version, parts, form, preview, parent=source)


def _bound_builder(
    request: StudioRequest,
) -> tuple[
    TemplateVersion,
    dict[str, Any],
    BatchBuilderForm,
    BatchPreview | None,
    Batch | None,
]:
    """The posted builder, parsed, previewed, with every problem at its field."""
    version = _version(
        request, request.POST.get("template"), request.POST.get("version")
    )
    campaign = None
    if code := _uuid(request.POST.get("campaign")):
        campaign = get_in_workspace(
            request, Campaign.objects.select_related("brand"), code=code
        )
    parts = _builder_parts(request, version, campaign)
    form = _form(request, version, parts, data=request.POST, files=request.FILES)
    parent = None
    if parent_code := _uuid(request.POST.get("parent")):
        parent = _batch_for_user(request, parent_code)
    preview = None
    valid = form.is_valid()
    surface_hidden_errors(form, labels=HIDDEN_FIELD_LABELS)
    # Even with a field that did not parse, the rest is checked: every problem shows at once.
    if form.spec is not None and parts["campaign"] is not None:
        preview = batch_services.batch_preview(
            campaign=parts["campaign"], version=version, spec=form.spec
        )
        form.add_plan_errors(preview.errors)
        if not valid:
            preview.errors.setdefault("form", ["Fix the marked fields."])
    return version, parts, form, preview, parent


@require_POST
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_preview(request: StudioRequest) -> HttpResponse:
    """Count, first prompts exactly as sent, estimate per backend and budget fit. Stores nothing."""
    version, parts, form, preview, parent = _bound_builder(request)
    return _render_builder(request, version, parts, form, preview, parent)


@require_http_methods(["GET", "POST"])
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_create(request: StudioRequest) -> HttpResponse:
    """GET: the builder. POST: dispatch its batch (everything is checked again, then stored in
    one transaction; the form's one-time token makes a double click harmless)."""
    if request.method == "GET":
        return _builder_page(request)
    version, parts, form, preview, parent = _bound_builder(request)
    if preview is not None and preview.can_dispatch and form.spec is not None:
        try:
            batch = batch_services.batch_create(
                campaign=parts["campaign"],
                version=version,
                spec=form.spec,
                user=request.user,
                name=form.cleaned_data.get("name") or "",
                token=form.cleaned_data["token"],
                parent=parent,
                # Planned and validated once, by _bound_builder: not again here.
                preview=preview,
                changed=describe_changes(BatchSpec.from_json(parent.spec), form.spec)
                if parent
                else "",
            )
        except BatchRefused as exc:
            form.add_plan_errors(exc.errors)
        else:
            messages.success(
                request, f"Batch dispatched: {batch.size} generations queued."
            )
            url = reverse("generation:batch-detail", args=[batch.code])
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
    return _render_builder(request, version, parts, form, preview, parent)


# --- The batch page ---------------------------------------------------------------------------


def _detail_context(
    request: StudioRequest, batch: Batch, **extra: Any
) -> dict[str, Any]:
    batch = batch_sync_state(batch=batch)
    progress = progress_services.batch_progress(batch=batch)
    assets = (
        Asset.objects.filter(generation__batch=batch)
        .select_related("generation")
        .order_by("generation_id")
    )
    landed = assets.count()
    if landed > THUMBNAIL_LIMIT:
        assets = assets.order_by("-generation_id")
    can_edit = _can_edit(request)
    context: dict[str, Any] = {
        "batch": batch,
        "progress": progress,
        "assets": list(assets[:THUMBNAIL_LIMIT]),
        "landed": landed,
        "can_edit": can_edit,
        "spec": BatchSpec.from_json(batch.spec),
        "reruns": batch.reruns.order_by("-created_at")[:10],
    }
    if batch.state == Batch.State.DRAFT and batch.template_version is not None:
        context["draft_preview"] = batch_services.batch_preview(
            campaign=batch.campaign,
            version=batch.template_version,
            spec=context["spec"],
        )
    try:
        # The review gallery may not be installed; the page works without the link.
        context["gallery_url"] = reverse("generation:batch-gallery", args=[batch.code])
    except NoReverseMatch:
        context["gallery_url"] = ""
    if can_edit and "rerun_form" not in extra and batch.template_version is not None:
        context["rerun_form"] = _rerun_form(batch)
    context.update(extra)
    return context


def _rerun_form(batch: Batch, data: Any = None) -> RerunForm:
    axes = batch_axes(batch)
    form = RerunForm(data, axes=axes)
    form.axis_values = [(key, value) for key, _label, value in axes]  # type: ignore[attr-defined]
    return form


@require_GET
@member_required()
def batch_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    batch = _batch_for_user(request, code)
    return render(request, DETAIL, _detail_context(request, batch))


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def batch_progress(request: StudioRequest, code: UUID) -> HttpResponse:
    """The live part of the batch page; polled every 2 s while the batch is active."""
    batch = _batch_for_user(request, code)
    context = _detail_context(request, batch)
    return render(
        request,
        f"{DETAIL}#batch_progress" if wants_partial(request) else DETAIL,
        context,
    )


def _after_action(request: StudioRequest, batch: Batch) -> HttpResponse:
    if wants_partial(request):
        batch = Batch.objects.get(pk=batch.pk)
        return render(
            request, f"{DETAIL}#batch_progress", _detail_context(request, batch)
        )
    return redirect("generation:batch-detail", batch.code)


@require_POST
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_dispatch(request: StudioRequest, code: UUID) -> HttpResponse:
    batch = _batch_for_user(request, code)
    try:
        batch = batch_services.batch_dispatch(batch=batch, user=request.user)
    except BatchRefused as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Batch dispatched: {batch.size} generations queued.")
    url = reverse("generation:batch-detail", args=[batch.code])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_cancel(request: StudioRequest, code: UUID) -> HttpResponse:
    batch = _batch_for_user(request, code)
    canceled = batch_services.batch_cancel(batch=batch)
    messages.info(request, f"Batch canceled: {canceled} generations stopped.")
    return _after_action(request, batch)


@require_POST
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_retry(request: StudioRequest, code: UUID) -> HttpResponse:
    batch = _batch_for_user(request, code)
    try:
        retried = batch_retry_failed(batch=batch, user=request.user)
    except BatchRefused as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Retrying {retried} failed generations.")
    return _after_action(request, batch)


@require_POST
@member_required(Role.EDITOR)
def batch_rerun(request: StudioRequest, code: UUID) -> HttpResponse:
    """A draft copy with one axis changed; its page shows the preview and a Dispatch button."""
    batch = _batch_for_user(request, code)
    form = _rerun_form(batch, request.POST)
    if form.is_valid():
        parts_presets = (
            size_presets(campaign=batch.campaign, version=batch.template_version)
            if batch.template_version
            else {}
        )
        try:
            draft = batch_rerun_with_axis(
                batch=batch,
                axis=form.cleaned_data["axis"],
                text=form.cleaned_data["values"],
                user=request.user,
                presets=parts_presets,
            )
        except BatchRefused as exc:
            for key, messages_ in exc.errors.items():
                for message in messages_:
                    form.add_error("values" if key not in form.fields else key, message)
        else:
            messages.success(
                request,
                f"Draft re-run ready: {draft.changed}. Check it, then dispatch.",
            )
            return redirect("generation:batch-detail", draft.code)
    return render(request, DETAIL, _detail_context(request, batch, rerun_form=form))


# --- Change one thing ----------------------------------------------------------------------------

VARIANT = "generation/batches/variant.html"


def _asset_for_user(request: StudioRequest, code: UUID) -> Asset:
    return asset_for_user(
        request,
        code,
        "generation__template_version__template",
        "generation__batch",
        "generation__campaign",
        "generation__brand",
        "generation__parent__asset",
    )


def _variant_form(asset: Asset, data: Any = None) -> VariantForm:
    generation = asset.generation
    version = generation.template_version
    if version is not None and generation.variables:
        values = {n: str(generation.variables.get(n, "")) for n in version.variables}
        return VariantForm(data, variables=values)
    return VariantForm(data, variables={}, free_prompt=generation.prompt)


def _variant_context(asset: Asset, form: VariantForm) -> dict[str, Any]:
    generation = asset.generation
    children = (
        Generation.objects.filter(
            parent=generation, workspace_id=generation.workspace_id
        )
        .select_related("asset")
        .order_by("-queued_at", "-pk")[:24]
    )
    return {
        "asset": asset,
        "generation": generation,
        "form": form,
        "children": children,
        "children_active": any(c.is_active for c in children),
    }


@require_http_methods(["GET", "POST"])
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def asset_variant(request: StudioRequest, code: UUID) -> HttpResponse:
    """Change one thing: the asset's seed, model, size and references with the edited values.

    GET shows the form (the asset's values filled in) and the variants made so far, polled while
    any is running; POST queues the variant and comes back here.
    """
    asset = _asset_for_user(request, code)
    if request.method == "GET":
        context = _variant_context(asset, _variant_form(asset))
        return render(
            request,
            f"{VARIANT}#variant_list" if wants_partial(request) else VARIANT,
            context,
        )
    form = _variant_form(asset, request.POST)
    if form.is_valid():
        try:
            generation = variant_from_asset(
                asset=asset,
                user=request.user,
                values=form.values(),
                prompt=form.cleaned_data.get("prompt"),
            )
        except BatchRefused as exc:
            form.add_service_errors(exc.errors)
        else:
            changed = ", ".join(
                "the prompt" if name == "prompt" else f"{{{name}}}"
                for name in generation.changes
            )
            messages.success(request, f"Variant queued: only {changed} changed.")
            return redirect("generation:asset-variant", asset.code)
    return render(request, VARIANT, _variant_context(asset, form))
