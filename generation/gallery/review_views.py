"""The review actions on one asset (decide, star, tag, comment, focal point) and on a selection.

What a member may change is decided by generation/review.py on the server (403 otherwise),
whatever the page shows. htmx: each action swaps its own card (`#asset-<code>`, outerHTML) and
updates the `#review-live` status out of band; without JavaScript every form posts and
redirects back.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from generation import review
from generation.gallery import queries as gallery
from generation.gallery import titles
from generation.gallery.forms import (
    ACTIONS,
    BulkForm,
    CommentForm,
    FocalPointForm,
    ReviewForm,
    is_uuid,
)
from generation.models import Asset, ReviewStatus
from studio import permissions
from studio.http import StudioRequest, wants_partial
from studio.tenancy import member_required

# The htmx event a review action sends; the status chips refresh themselves on it.
REVIEW_CHANGED = "review-changed"


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
    titles.titled([asset])
    return asset


def _next_url(request: StudioRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- Review actions ----------------------------------------------------------------------------


def _card_response(
    request: StudioRequest, code: UUID, *, note: str, error: str = ""
) -> HttpResponse:
    if wants_partial(request):
        context = {"asset": _card(request, code), "note": note, "error": error}
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
    permissions.require(request, "asset.annotate")
    asset = gallery.asset_for_user(request, code)
    wanted = request.POST.get("starred")
    starred = (not asset.starred) if wanted is None else wanted in ("1", "true", "on")
    review.asset_star(asset=asset, actor=request.user, starred=starred)
    return _card_response(request, code, note="Starred." if starred else "Unstarred.")


@require_POST
@member_required()
def asset_tags(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "asset.annotate")
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
            {"asset": _card(request, code)},
        )
    return _card_response(request, code, note="Tags saved.")


@require_POST
@member_required()
def asset_comment(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "asset.annotate")
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
        error = " ".join(str(e) for e in form.errors["body"])
    if wants_partial(request):
        context = {
            "asset": asset,
            "timeline": review.review_timeline(asset=asset),
            "comment_form": form,
            "comment_error": error,
        }
        return render(request, "generation/asset_detail.html#asset_timeline", context)
    if error:
        messages.error(request, error)
    return redirect(reverse("generation:asset-detail", args=[code]) + "#timeline")


@require_POST
@member_required()
def asset_focal_point(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "asset.annotate")
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
    codes = [UUID(c) for c in request.POST.getlist("asset") if is_uuid(c)]
    if not codes:
        return _bulk_answer(request, [], back, error="Select images first (x).")
    assets = list(
        Asset.objects.filter(workspace=request.workspace, code__in=codes).values_list(
            "pk", flat=True
        )
    )
    action = form.cleaned_data["action"]
    # star, unstar, tag, untag; review decisions are checked per status.
    if action not in ACTIONS:
        permissions.require(request, "asset.annotate")
    common: dict[str, Any] = {"workspace_id": request.workspace.pk, "asset_ids": assets}
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
    titles.titled(cards)
    context = {"cards": cards, "note": note, "error": error}
    response = render(request, "generation/gallery.html#bulk_result", context)
    return trigger_client_event(response, REVIEW_CHANGED) if cards else response
