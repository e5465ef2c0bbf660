"""The review gallery: browse (per workspace, brand, campaign, batch), review, compare, trace.

Every member of the workspace browses, compares and reads an asset's history. What they may
change is decided by generation/review.py on the server (403 otherwise), whatever the page shows:
approvers and admins approve and reject; editors request changes, comment, star and tag.
Another workspace's objects answer 404, their image files included.

htmx: filters swap `#gallery-results` and push a canonical URL, so a filtered view can be
shared; the scroll sentinel `#gallery-more` fetches the next keyset page; each review action
swaps its own card (`#asset-<code>`, outerHTML) and updates the `#review-live` status out of
band. Without JavaScript every form posts and redirects back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.fields.files import FieldFile
from django.http import (
    Http404,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url, trigger_client_event

from campaigns.models import Brand, Campaign, ReferenceImage, TemplateVersion
from generation import review
from generation.gallery import queries as gallery
from generation.models import Asset, Batch, Generation, ReviewStatus
from studio.http import StudioRequest, wants_partial
from studio.private_files import serve_private_file
from studio.tenancy import get_in_workspace, member_required

# An asset's files never change once ingested, and their URLs carry the file's sha256 (?v=):
# the browser may keep them for a year, privately (never in a shared cache).
FILE_MAX_AGE = 365 * 24 * 3600

# The htmx event a review action sends; the status chips refresh themselves on it.
REVIEW_CHANGED = "review-changed"

ACTIONS = {
    "approve": ReviewStatus.APPROVED,
    "reject": ReviewStatus.REJECTED,
    "changes": ReviewStatus.CHANGES_REQUESTED,
    "reopen": ReviewStatus.PENDING,
}


class ReviewForm(forms.Form):
    status = forms.ChoiceField(choices=ReviewStatus.choices)
    comment = forms.CharField(required=False, max_length=review.MAX_COMMENT_CHARS)


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=review.MAX_COMMENT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Comment",
    )


class FocalPointForm(forms.Form):
    x = forms.FloatField(min_value=0, max_value=100, required=False, label="x (%)")
    y = forms.FloatField(min_value=0, max_value=100, required=False, label="y (%)")


class BulkForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(key, key) for key in [*ACTIONS, "star", "unstar", "tag", "untag"]]
    )
    comment = forms.CharField(required=False, max_length=review.MAX_COMMENT_CHARS)
    tag = forms.CharField(required=False, max_length=40)


# --- Access helpers ----------------------------------------------------------------------------


def _card(request: StudioRequest, code: UUID) -> Asset:
    """The asset as a card shows it, re-read after a change (the "view restart")."""
    assert request.workspace is not None
    asset = (
        gallery.card_queryset(Asset.objects.filter(workspace=request.workspace))
        .filter(code=code)
        .first()
    )
    if asset is None:
        raise Http404
    return asset


def _flags(request: StudioRequest) -> dict[str, bool]:
    membership = request.membership
    return {
        "can_decide": review.may(membership=membership, action=ReviewStatus.APPROVED),
        "can_edit": review.may(membership=membership, action="comment"),
    }


def _next_url(request: StudioRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- Galleries ---------------------------------------------------------------------------------


def _gallery(
    request: StudioRequest,
    *,
    scope: gallery.Scope,
    title: str,
    gallery_url: str,
    crumbs: list[tuple[str, str]],
) -> HttpResponse:
    filters = gallery.Filters.from_query(request.GET)
    # Which region an htmx request swaps (style rule 6: branch on the target, never on a name
    # the client sends): the scroll sentinel, the status chips after a review, or the results.
    target = request.htmx.target if wants_partial(request) else None
    context: dict[str, Any] = {
        "scope": scope,
        "title": title,
        "crumbs": crumbs,
        "gallery_url": gallery_url,
        "share_url": gallery_url + filters.query_string(),
        "filters": filters,
        **_flags(request),
    }
    name = "generation/gallery.html"
    if target != "status-chips":
        page = gallery.gallery_page(
            scope=scope,
            filters=filters,
            after=request.GET.get("after", ""),
            size=gallery.PAGE_SIZE,
        )
        context["page"] = page
        context["next_url"] = (
            gallery_url + filters.query_string(after=page.next_cursor)
            if page.next_cursor
            else ""
        )
    if target == "gallery-more":
        return render(request, f"{name}#gallery_page", context)
    counts = gallery.scope_review_counts(scope=scope, filters=filters)
    context["counts"] = counts
    context["status_links"] = [
        {
            "status": status,
            "label": label,
            "count": counts.total if not status else counts.counts.get(status, 0),
            "url": gallery_url + replace(filters, status=status).query_string(),
            "active": filters.status == status,
        }
        for status, label in [("", "All"), *ReviewStatus.choices]
    ]
    if target == "status-chips":
        return render(request, f"{name}#status_chips", context)
    if target is not None:
        response = render(
            request,
            f"{name}#gallery_results",
            context,
            status=400 if filters.errors else 200,
        )
        # The canonical URL (empty fields left out) goes into the address bar: share it as is.
        return push_url(response, context["share_url"])
    context["choices"] = gallery.filter_choices(scope=scope)
    # A refused filter value (a NUL character) answers 400 with the form error, never a 500.
    return render(request, name, context, status=400 if filters.errors else 200)


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def workspace_gallery(request: StudioRequest) -> HttpResponse:
    assert request.workspace is not None
    return _gallery(
        request,
        scope=gallery.Scope(workspace=request.workspace),
        title="Gallery",
        gallery_url=reverse("generation:gallery"),
        crumbs=[],
    )


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def brand_gallery(request: StudioRequest, code: UUID) -> HttpResponse:
    brand = get_in_workspace(request, Brand.objects.all(), code=code)
    return _gallery(
        request,
        scope=gallery.Scope(workspace=brand.workspace, brand=brand),
        title=f"{brand.name}: gallery",
        gallery_url=reverse("generation:brand-gallery", args=[brand.code]),
        crumbs=[
            ("Brands", reverse("campaigns:brand-list")),
            (brand.name, reverse("campaigns:brand-detail", args=[brand.code])),
        ],
    )


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def campaign_gallery(request: StudioRequest, code: UUID) -> HttpResponse:
    campaign = get_in_workspace(
        request, Campaign.objects.select_related("brand", "workspace"), code=code
    )
    return _gallery(
        request,
        scope=gallery.Scope(workspace=campaign.workspace, campaign=campaign),
        title=f"{campaign.name}: gallery",
        gallery_url=reverse("generation:campaign-gallery", args=[campaign.code]),
        crumbs=[
            ("Campaigns", reverse("campaigns:campaign-list")),
            (campaign.name, reverse("campaigns:campaign-detail", args=[campaign.code])),
        ],
    )


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def batch_gallery(request: StudioRequest, code: UUID) -> HttpResponse:
    batch = get_in_workspace(
        request,
        Batch.objects.select_related("campaign", "brand", "workspace"),
        code=code,
    )
    return _gallery(
        request,
        scope=gallery.Scope(workspace=batch.workspace, batch=batch),
        title=f"{batch}: gallery",
        gallery_url=reverse("generation:batch-gallery", args=[batch.code]),
        crumbs=[
            ("Campaigns", reverse("campaigns:campaign-list")),
            (
                batch.campaign.name,
                reverse("campaigns:campaign-detail", args=[batch.campaign.code]),
            ),
        ],
    )


# --- Files -------------------------------------------------------------------------------------


@require_GET
@member_required()
def asset_thumbnail(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = get_in_workspace(
        request, Asset.objects.only("file", "thumbnail", "content_type"), code=code
    )
    if not asset.thumbnail:
        return _serve(asset.file, content_type=asset.content_type, filename="")
    return _serve(asset.thumbnail, content_type="image/webp", filename="")


@require_GET
@member_required()
def asset_image(request: StudioRequest, code: UUID) -> HttpResponse:
    """The image as the provider made it; `?download=1` sends it as an attachment."""
    asset = get_in_workspace(
        request,
        Asset.objects.select_related("generation").only(
            "file", "content_type", "format", "generation__code"
        ),
        code=code,
    )
    return _serve(
        asset.file,
        content_type=asset.content_type,
        filename=f"{asset.generation.code}.{asset.format or 'img'}",
        as_attachment=request.GET.get("download") == "1",
    )


def _serve(
    file: FieldFile, *, content_type: str, filename: str, as_attachment: bool = False
) -> HttpResponse:
    return serve_private_file(
        file,
        content_type=content_type,
        filename=filename,
        max_age=FILE_MAX_AGE,
        immutable=True,
        as_attachment=as_attachment,
    )


# --- Review actions ----------------------------------------------------------------------------


def _card_response(
    request: StudioRequest, code: UUID, *, note: str, error: str = ""
) -> HttpResponse:
    if wants_partial(request):
        context = {"asset": _card(request, code), "note": note, "error": error}
        context.update(_flags(request))
        response = render(request, "generation/gallery.html#asset_card_swap", context)
        # The status chips and progress bar listen for this and refresh themselves.
        return trigger_client_event(response, REVIEW_CHANGED)
    if error:
        messages.error(request, error)
    elif note:
        messages.success(request, note)
    return redirect(_next_url(request, reverse("generation:asset-detail", args=[code])))


@require_POST
@member_required()
def asset_review(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = gallery.asset_for_user(request, code)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _card_response(request, code, note="", error="Choose a decision.")
    status = form.cleaned_data["status"]
    try:
        event = review.asset_review(
            asset=asset,
            actor=request.user,
            to_status=status,
            comment=form.cleaned_data["comment"],
        )
    except ValidationError as exc:
        return _card_response(request, code, note="", error=" ".join(exc.messages))
    label = ReviewStatus(status).label
    note = f"{label}." if event else f"Already {label.lower()}."
    return _card_response(request, code, note=note)


@require_POST
@member_required()
def asset_star(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = gallery.asset_for_user(request, code)
    wanted = request.POST.get("starred")
    starred = (not asset.starred) if wanted is None else wanted in ("1", "true", "on")
    review.asset_star(asset=asset, actor=request.user, starred=starred)
    return _card_response(request, code, note="Starred." if starred else "Unstarred.")


@require_POST
@member_required()
def asset_tags(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = gallery.asset_for_user(request, code)
    add = [t for t in request.POST.get("add", "").split(",") if t.strip()]
    remove = request.POST.getlist("remove")
    try:
        review.asset_tag(asset=asset, actor=request.user, add=add, remove=remove)
    except ValidationError as exc:
        return _card_response(request, code, note="", error=" ".join(exc.messages))
    if wants_partial(request) and request.htmx.target == "asset-tags":
        return render(
            request,
            "generation/asset_detail.html#asset_tags",
            {"asset": _card(request, code), **_flags(request)},
        )
    return _card_response(request, code, note="Tags saved.")


@require_POST
@member_required()
def asset_comment(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = gallery.asset_for_user(request, code)
    form = CommentForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            review.comment_add(
                asset=asset, author=request.user, body=form.cleaned_data["body"]
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            form = CommentForm()
    elif form.has_error("body", "required"):
        error = "Write something first."
    else:  # too long, or a NUL character: the form's own message says which
        error = " ".join(form.errors["body"])
    if wants_partial(request):
        context = {
            "asset": asset,
            "timeline": review.review_timeline(asset=asset),
            "comment_form": form,
            "comment_error": error,
            **_flags(request),
        }
        return render(request, "generation/asset_detail.html#asset_timeline", context)
    if error:
        messages.error(request, error)
    return redirect(reverse("generation:asset-detail", args=[code]) + "#timeline")


@require_POST
@member_required()
def asset_focal_point(request: StudioRequest, code: UUID) -> HttpResponse:
    asset = gallery.asset_for_user(request, code)
    form = FocalPointForm(request.POST)
    if form.is_valid():
        x, y = form.cleaned_data["x"], form.cleaned_data["y"]
        try:
            review.asset_focal_point(
                asset=asset,
                actor=request.user,
                x=None if x is None else x / 100,
                y=None if y is None else y / 100,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Focal point saved.")
    else:
        messages.error(request, "The focal point is two percentages from 0 to 100.")
    return redirect("generation:asset-detail", code)


@require_POST
@member_required()
def asset_bulk(request: StudioRequest) -> HttpResponse:
    """One action on a selection: approve, reject, request changes, reopen, star, tag.

    htmx: answers the changed cards out of band (each swaps itself) and a status line; without
    JavaScript: a redirect back to the gallery with a message.
    """
    assert request.workspace is not None
    form = BulkForm(request.POST)
    back = _next_url(request, reverse("generation:gallery"))
    if not form.is_valid():
        return _bulk_answer(request, [], back, error="Choose an action.")
    # The selection: codes that are not UUIDs are dropped, the workspace filter does the rest.
    codes = [UUID(c) for c in request.POST.getlist("asset") if _is_uuid(c)]
    if not codes:
        return _bulk_answer(request, [], back, error="Select images first (x).")
    assets = list(
        Asset.objects.filter(workspace=request.workspace, code__in=codes).values_list(
            "pk", flat=True
        )
    )
    action = form.cleaned_data["action"]
    common = {"workspace_id": request.workspace.pk, "asset_ids": assets}
    n = len(assets)
    images = f"{n} image{'s' if n != 1 else ''}"
    try:
        if action in ACTIONS:
            events = review.assets_review(
                **common,
                actor=request.user,
                to_status=ACTIONS[action],
                comment=form.cleaned_data["comment"],
            )
            note = f"{ReviewStatus(ACTIONS[action]).label}: {len(events)} of {images}."
        elif action in ("star", "unstar"):
            review.assets_star(**common, actor=request.user, starred=action == "star")
            note = f"{'Starred' if action == 'star' else 'Unstarred'} {images}."
        else:
            tag = form.cleaned_data["tag"].strip()
            if not tag:
                return _bulk_answer(request, [], back, error="Type a tag first.")
            if action == "tag":
                review.assets_tag(**common, actor=request.user, add=[tag])
            else:
                review.assets_tag(**common, actor=request.user, remove=[tag])
            note = f"Tag “{tag}” {'added to' if action == 'tag' else 'removed from'} {images}."
    except ValidationError as exc:
        return _bulk_answer(request, [], back, error=" ".join(exc.messages))
    return _bulk_answer(request, codes, back, note=note)


def _bulk_answer(
    request: StudioRequest,
    codes: list[UUID],
    back: str,
    *,
    note: str = "",
    error: str = "",
) -> HttpResponse:
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, note)
        return redirect(back)
    assert request.workspace is not None
    cards = list(
        gallery.card_queryset(
            Asset.objects.filter(workspace=request.workspace, code__in=codes)
        )
    )
    context = {"cards": cards, "note": note, "error": error, **_flags(request)}
    response = render(request, "generation/gallery.html#bulk_result", context)
    return trigger_client_event(response, REVIEW_CHANGED) if cards else response


# --- Compare -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required()
def asset_compare(request: StudioRequest) -> HttpResponse:
    """2 to 4 assets side by side: ?asset=<code>&asset=<code>… (POST: the gallery's selection)."""
    assert request.workspace is not None
    if request.method == "POST":
        # The bulk form's "Compare" button posts the selection (its CSRF token must not end up
        # in a URL); answer with the shareable GET address.
        codes = [c for c in request.POST.getlist("asset") if _is_uuid(c)]
        query = "&".join(f"asset={c}" for c in dict.fromkeys(codes))
        return redirect(f"{reverse('generation:asset-compare')}?{query}")
    codes = request.GET.getlist("asset")
    if not all(_is_uuid(c) for c in codes):
        raise Http404
    codes = [str(UUID(c)) for c in codes]
    count = len(dict.fromkeys(codes))
    if not gallery.COMPARE_MIN <= count <= gallery.COMPARE_MAX:
        return render(
            request,
            "generation/compare.html",
            {"comparison": None, "count": count},
            status=400,
        )
    try:
        comparison = gallery.compare_assets(workspace=request.workspace, codes=codes)
    except LookupError as exc:
        raise Http404 from exc
    return render(
        request, "generation/compare.html", {"comparison": comparison, "count": count}
    )


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except (TypeError, ValueError):
        return False
    return True


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
    generation = asset.generation
    context: dict[str, Any] = {
        "asset": asset,
        "generation": generation,
        "prompt": gallery.readable_prompt(generation.prompt),
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
        **_flags(request),
    }
    return render(request, "generation/asset_detail.html", context)


def _references(generation: Generation) -> list[dict[str, Any]]:
    codes = [r["code"] for r in generation.references if r.get("code")]
    library = {
        str(ref.code): ref
        for ref in ReferenceImage.objects.filter(
            workspace_id=generation.workspace_id,
            code__in=[c for c in codes if _is_uuid(c)],
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
    out, previous = [], None
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
