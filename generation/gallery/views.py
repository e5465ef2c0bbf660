"""The review gallery: browse (per workspace, brand, campaign, batch) and the image files.

Every member of the workspace browses, compares and reads an asset's history. What they may
change is decided by generation/review.py on the server (403 otherwise), whatever the page shows:
approvers and admins approve and reject; editors request changes, comment, star and tag.
Another workspace's objects answer 404, their image files included.

htmx: filters swap `#gallery-results` and push a canonical URL, so a filtered view can be
shared; the scroll sentinel `#gallery-more` fetches the next keyset page. The review actions
are in review_views.py, the asset page and the comparison in asset_views.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from django.db.models.fields.files import FieldFile
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from campaigns.models import Brand, Campaign
from generation.gallery import counts as review_counts
from generation.gallery import filters as gallery_filters
from generation.gallery import queries as gallery
from generation.gallery import titles
from generation.models import Asset, Batch, ReviewStatus
from studio.http import StudioRequest, wants_partial
from studio.private_files import serve_private_file
from studio.tenancy import get_in_workspace, member_required

# An asset's files never change once ingested, and their URLs carry the file's sha256 (?v=):
# the browser may keep them for a year, privately (never in a shared cache).
FILE_MAX_AGE = 365 * 24 * 3600


# --- Galleries ---------------------------------------------------------------------------------


def _gallery(
    request: StudioRequest,
    *,
    scope: gallery.Scope,
    title: str,
    gallery_url: str,
    crumbs: list[tuple[str, str]],
) -> HttpResponse:
    filters = gallery_filters.Filters.from_query(request.GET)
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
        # Titles name each image by what sets it apart in its batch; grouped pages also head
        # each batch's run with how many of its images match (one query for all batches).
        facts = titles.titled(
            page.assets,
            matching=filters.apply(scope.assets()) if page.grouped else None,
        )
        if page.grouped:
            context["groups"] = titles.groups(
                page.assets, facts, before=page.group_before
            )
        context["next_url"] = (
            gallery_url + filters.query_string(after=page.next_cursor)
            if page.next_cursor
            else ""
        )
    if target == "gallery-more":
        return render(request, f"{name}#gallery_page", context)
    counts = review_counts.scope_review_counts(scope=scope, filters=filters)
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
    context["choices"] = gallery_filters.filter_choices(scope=scope)
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
def asset_thumbnail(request: StudioRequest, code: UUID) -> HttpResponseBase:
    asset = get_in_workspace(
        request, Asset.objects.only("file", "thumbnail", "content_type"), code=code
    )
    if not asset.thumbnail:
        return _serve(asset.file, content_type=asset.content_type, filename="")
    return _serve(asset.thumbnail, content_type="image/webp", filename="")


@require_GET
@member_required()
def asset_image(request: StudioRequest, code: UUID) -> HttpResponseBase:
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
) -> HttpResponseBase:
    return serve_private_file(
        file,
        content_type=content_type,
        filename=filename,
        max_age=FILE_MAX_AGE,
        immutable=True,
        as_attachment=as_attachment,
    )
