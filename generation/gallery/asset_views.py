"""One asset's page (the exact request, lineage, review trail) and the comparison of 2 to 4."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from campaigns.models import ReferenceImage, TemplateVersion
from generation import review
from generation.gallery import compare, titles
from generation.gallery import queries as gallery
from generation.gallery.forms import CommentForm, FocalPointForm, is_uuid
from generation.models import Asset, Generation, ReviewStatus
from studio.http import StudioRequest
from studio.tenancy import get_in_workspace, member_required

# --- Compare -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required()
def asset_compare(request: StudioRequest) -> HttpResponse:
    """2 to 4 assets side by side: ?asset=<code>&asset=<code>… (POST: the gallery's selection)."""
    assert request.workspace is not None
    if request.method == "POST":
        # The bulk form's "Compare" button posts the selection (its CSRF token must not end up
        # in a URL); answer with the shareable GET address.
        codes = [c for c in request.POST.getlist("asset") if is_uuid(c)]
        query = "&".join(f"asset={c}" for c in dict.fromkeys(codes))
        return redirect(f"{reverse('generation:asset-compare')}?{query}")
    codes = request.GET.getlist("asset")
    if not all(is_uuid(c) for c in codes):
        raise Http404
    codes = [str(UUID(c)) for c in codes]
    count = len(dict.fromkeys(codes))
    if not compare.COMPARE_MIN <= count <= compare.COMPARE_MAX:
        return render(
            request,
            "generation/compare.html",
            {"comparison": None, "count": count},
            status=400,
        )
    try:
        comparison = compare.compare_assets(workspace=request.workspace, codes=codes)
    except LookupError as exc:
        raise Http404 from exc
    return render(
        request, "generation/compare.html", {"comparison": comparison, "count": count}
    )


# --- The asset page ----------------------------------------------------------------------------


@require_GET
@member_required()
def asset_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    """Everything about one image: the exact request, costs and timings, the template version,
    lineage (parent, variants), the review trail and comments, and the full image with zoom."""
    asset = get_in_workspace(
        request,
        gallery.card_queryset(Asset.objects.all()).select_related(
            "generation__campaign",
            "generation__brand",
            "generation__created_by",
            "generation__batch",
            "generation__parent__asset",
        ),
        code=code,
    )
    titles.titled([asset])
    generation = asset.generation
    context: dict[str, Any] = {
        "asset": asset,
        "generation": generation,
        "prompt": compare.readable_prompt(generation.prompt),
        "prompt_is_json": generation.prompt.lstrip().startswith("{"),
        "references": _references(generation),
        "timings": _timings(generation),
        "previous_version": _previous_version(generation.template_version),
        "children": _children(generation),
        "timeline": review.review_timeline(asset=asset),
        "comment_form": CommentForm(),
        "focal_form": FocalPointForm(
            initial={
                "x": None if asset.focal_x is None else round(asset.focal_x * 100, 1),
                "y": None if asset.focal_y is None else round(asset.focal_y * 100, 1),
            }
        ),
        "remix_url": _remix_url(generation),
        "statuses": ReviewStatus.choices,
    }
    return render(request, "generation/asset_detail.html", context)


def _references(generation: Generation) -> list[dict[str, Any]]:
    codes = [r["code"] for r in generation.references if r.get("code")]
    library = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=generation.workspace_id,
            code__in=[c for c in codes if is_uuid(c)],
        )
    }
    return [
        {
            "image": index,
            "role": ref.get("role", ""),
            "code": ref.get("code", ""),
            "file": ref.get("name") or ref.get("file", ""),
            "reference": library.get(str(ref.get("code", ""))),
        }
        for index, ref in enumerate(generation.references, start=1)
    ]


def _timings(generation: Generation) -> list[dict[str, Any]]:
    steps = [
        ("Queued", generation.queued_at),
        ("Submitted", generation.submitted_at),
        ("Running", generation.running_at),
        ("Ingesting", generation.ingesting_at),
        (generation.get_state_display(), generation.finished_at),
    ]
    out: list[dict[str, Any]] = []
    previous: datetime | None = None
    for label, at in steps:
        if at is None:
            continue
        out.append(
            {
                "label": label,
                "at": at,
                "after": (at - previous).total_seconds() if previous else None,
            }
        )
        previous = at
    if out and len(out) > 1:
        out.append(
            {
                "label": "Total",
                "at": None,
                "after": (out[-1]["at"] - out[0]["at"]).total_seconds(),
            }
        )
    return out


def _previous_version(version: TemplateVersion | None) -> TemplateVersion | None:
    if version is None:
        return None
    return (
        TemplateVersion.objects.filter(
            template_id=version.template_id,
            workspace_id=version.workspace_id,
            number__lt=version.number,
        )
        .order_by("-number")
        .only("number")
        .first()
    )


def _children(generation: Generation) -> QuerySet[Generation]:
    return (
        Generation.objects.filter(
            workspace_id=generation.workspace_id, parent=generation
        )
        .select_related("asset")
        .only(
            "code",
            "state",
            "model",
            "backend",
            "seed",
            "changes",
            "queued_at",
            "asset__code",
            "asset__sha256",
            "asset__review_status",
            "asset__width",
            "asset__height",
        )
        .order_by("queued_at", "pk")[:50]
    )


def _remix_url(generation: Generation) -> str:
    """The batch builder, pre-filled from this generation (it reads ?from=<generation code>)."""
    return f"{reverse('generation:batch-create')}?from={generation.code}"
