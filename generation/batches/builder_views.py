"""The batch builder: choose a template, fill in values, seeds, models, sizes and references,
see the live preview (count, exact prompts, estimate, budget), dispatch.

Editors and up (403 otherwise); another workspace's templates and campaigns answer 404.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from campaigns.models import Campaign, PromptTemplate, ReferenceImage, TemplateVersion
from generation.batches import preview as batch_previews
from generation.batches import services as batch_services
from generation.batches.common import BatchRefused
from generation.batches.forms import (
    HIDDEN_FIELD_LABELS,
    BatchBuilderForm,
    builder_initial,
    size_presets,
)
from generation.batches.preview import BatchPreview
from generation.batches.spec import BatchSpec, fix_axes
from generation.batches.targets import target_options
from generation.batches.variants import (
    describe_changes,
    spec_from_generation,
)
from generation.batches.views import batch_for_user, parse_uuid
from generation.models import Batch, Generation
from studio.form_errors import surface_hidden_errors
from studio.http import StudioRequest, wants_partial
from studio.models import Role
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required

BUILDER = "generation/batches/builder.html"


def _version(
    request: StudioRequest, template_code: Any, number: Any
) -> TemplateVersion:
    template = get_in_workspace(
        request,
        PromptTemplate.objects.select_related("brand", "campaign"),
        code=parse_uuid(str(template_code or "")),
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
    for option in form.target_choices:
        backend = str(option[0]).split(":", 1)[0]
        labels[backend] = str(option[1]).split(" · ", 1)[0]
    for widget in form["targets"]:
        groups[str(widget.data["value"]).split(":", 1)[0]].append(widget)
    return [(labels[b], widgets) for b, widgets in groups.items()]


# Problems planning reports under no field of the form, and the section that shows them.
_SECTION_ERRORS = {"template": "template-errors", "references": "references"}


def _dispatch_problems(
    form: BatchBuilderForm,
) -> tuple[list[str], list[tuple[str, str]]]:
    """What stops dispatch, for the preview panel: the problems that sit at no field, in words,
    and (label, element id) of each field or section that is marked. "Fix the marked fields" is
    said only when one is."""
    messages = [str(m) for m in form.non_field_errors()]
    marked: list[tuple[str, str]] = []
    for field in form.marked_fields():
        label = str(field.label)
        if field.name.startswith("matrix_"):
            label = "{" + label + "}"
        elif field.name.startswith("ref_"):
            # The slot's fieldset (it may have no image to choose yet).
            marked.append((f"reference “{label}”", f"slot-{slugify(label)}"))
            continue
        choices = getattr(field.field, "choices", None)  # radios and checkboxes
        anchor = f"{field.auto_id}_0" if choices and field.name != "campaign" else ""
        marked.append((label, anchor or str(field.auto_id)))
    for key, element in _SECTION_ERRORS.items():
        if form.extra_errors.get(key):
            marked.append((key.capitalize(), element))
    return messages, marked


def _render_builder(
    request: StudioRequest,
    version: TemplateVersion,
    parts: dict[str, Any],
    form: BatchBuilderForm,
    preview: BatchPreview | None,
    parent: Batch | None = None,
) -> HttpResponse:
    problems, marked = _dispatch_problems(form) if form.is_bound else ([], [])
    context = {
        "problems": problems,
        "marked": marked,
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
    response = render(
        request, f"{BUILDER}#builder" if wants_partial(request) else BUILDER, context
    )
    if problems and request.htmx.trigger == "dispatch-button":
        # A refused dispatch: bring the banner into view, below the sticky top bar (its
        # scroll-margin-top), wherever the page was scrolled to.
        response["HX-Reswap"] = "outerHTML show:#builder-errors:top"
    return response


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
    if campaign_code := parse_uuid(request.GET.get("campaign")):
        campaign = get_in_workspace(
            request, Campaign.objects.select_related("brand"), code=campaign_code
        )
    source = None
    spec = None
    if from_code := parse_uuid(request.GET.get("from")):
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
        preview = batch_previews.batch_preview(
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
    if code := parse_uuid(request.POST.get("campaign")):
        campaign = get_in_workspace(
            request, Campaign.objects.select_related("brand"), code=code
        )
    parts = _builder_parts(request, version, campaign)
    form = _form(request, version, parts, data=request.POST, files=request.FILES)
    parent = None
    if parent_code := parse_uuid(request.POST.get("parent")):
        parent = batch_for_user(request, parent_code)
    preview = None
    valid = form.is_valid()
    surface_hidden_errors(form, labels=HIDDEN_FIELD_LABELS)
    # Even with a field that did not parse, the rest is checked: every problem shows at once.
    if form.spec is not None and parts["campaign"] is not None:
        preview = batch_previews.batch_preview(
            campaign=parts["campaign"], version=version, spec=form.spec
        )
        form.add_plan_errors(preview.errors)
        if not valid:
            # Blocks dispatch; the panel says what is wrong (_dispatch_problems).
            preview.errors.setdefault(
                "form", [str(m) for m in form.errors.get(NON_FIELD_ERRORS, [])]
            )
    return version, parts, form, preview, parent


@require_POST
@member_required(Role.EDITOR)
@vary_on_headers("HX-Request")
def batch_preview(request: StudioRequest) -> HttpResponse:
    """Count, first prompts exactly as sent, estimate per backend and budget fit. Stores nothing."""
    version, parts, form, preview, parent = _bound_builder(request)
    return _render_builder(request, version, parts, form, preview, parent)


@require_http_methods(["GET", "POST"])
@member_required()
@vary_on_headers("HX-Request")
def batch_create(request: StudioRequest) -> HttpResponse:
    """GET: the builder. POST: dispatch its batch (everything is checked again, then stored in
    one transaction; the form's one-time token makes a double click harmless)."""
    # The rule every "New batch" button reads (studio/permissions.py).
    require(request, "batch.create")
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
