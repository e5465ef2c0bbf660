"""Variant batches: list, builder with a live preview, dispatch, the batch page with live progress,
cancel, retry, re-run with one axis changed, and "change one thing" from an asset.

Viewers see batches; editors and up build, dispatch, cancel, retry and re-run (403 otherwise).
Another workspace's batches, templates and campaigns answer 404.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from generation.batches import preview as batch_previews
from generation.batches import progress as progress_services
from generation.batches import services as batch_services
from generation.batches.common import BatchRefused
from generation.batches.forms import (
    RerunForm,
    size_presets,
)
from generation.batches.rerun import batch_rerun_with_axis, batch_retry_failed
from generation.batches.services import batch_sync_state
from generation.batches.spec import BatchSpec
from generation.batches.variants import (
    batch_axes,
)
from generation.models import Asset, Batch
from studio import permissions
from studio.http import StudioRequest, wants_partial
from studio.tenancy import get_in_workspace, member_required

LIST_PAGE_SIZE = 50
# Thumbnails shown on the batch page (the newest first once a batch is bigger).
THUMBNAIL_LIMIT = 120
DETAIL = "generation/batches/detail.html"


def parse_uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def batch_for_user(request: StudioRequest, code: UUID) -> Batch:
    queryset = Batch.objects.select_related(
        "campaign", "brand", "template_version__template", "created_by", "parent"
    )
    return get_in_workspace(request, queryset, code=code)


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
        {"page": page},
    )


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
    context: dict[str, Any] = {
        "batch": batch,
        "progress": progress,
        "assets": list(assets[:THUMBNAIL_LIMIT]),
        "landed": landed,
        "spec": BatchSpec.from_json(batch.spec),
        "reruns": batch.reruns.order_by("-created_at")[:10],
    }
    if batch.state == Batch.State.DRAFT and batch.template_version is not None:
        context["draft_preview"] = batch_previews.batch_preview(
            campaign=batch.campaign,
            version=batch.template_version,
            spec=context["spec"],
        )
    try:
        # The review gallery may not be installed; the page works without the link.
        context["gallery_url"] = reverse("generation:batch-gallery", args=[batch.code])
    except NoReverseMatch:
        context["gallery_url"] = ""
    if (
        permissions.can(request.membership, "batch.create")
        and "rerun_form" not in extra
        and batch.template_version is not None
    ):
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
    batch = batch_for_user(request, code)
    return render(request, DETAIL, _detail_context(request, batch))


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def batch_progress(request: StudioRequest, code: UUID) -> HttpResponse:
    """The live part of the batch page; polled every 2 s while the batch is active."""
    batch = batch_for_user(request, code)
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
@member_required()
@vary_on_headers("HX-Request")
def batch_dispatch(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "batch.control")  # what the batch page offers
    batch = batch_for_user(request, code)
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
@member_required()
@vary_on_headers("HX-Request")
def batch_cancel(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "batch.control")  # what the batch page offers
    batch = batch_for_user(request, code)
    canceled = batch_services.batch_cancel(batch=batch)
    messages.info(request, f"Batch canceled: {canceled} generations stopped.")
    return _after_action(request, batch)


@require_POST
@member_required()
@vary_on_headers("HX-Request")
def batch_retry(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "batch.control")  # what the batch page offers
    batch = batch_for_user(request, code)
    try:
        retried = batch_retry_failed(batch=batch, user=request.user)
    except BatchRefused as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Retrying {retried} failed generations.")
    return _after_action(request, batch)


@require_POST
@member_required()
def batch_rerun(request: StudioRequest, code: UUID) -> HttpResponse:
    """A draft copy with one axis changed; its page shows the preview and a Dispatch button."""
    permissions.require(request, "batch.create")  # what the batch page offers
    batch = batch_for_user(request, code)
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
