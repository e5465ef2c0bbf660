"""Outside review pages. Two kinds:

- members (approvers and up) make and revoke links: `share_create`, `share_revoke`;
- the public pages under /share/<token>/ need no account: the link's images and manifest, a
  name form (asked once, kept in a cookie signed for that link) and the decision forms. They are
  CSRF-protected like every POST (Django's middleware also covers anonymous visitors),
  rate-limited per address, and give the same 404 for an unknown, expired or revoked token.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from exports import manifest, sharing
from exports.models import ExportPack, ShareFeedback, ShareLink
from generation.models import Asset
from studio.login_throttle import client_address
from studio.models import Role
from studio.private_files import serve_private_file
from studio.tenancy import get_in_workspace, member_required

COOKIE = "share_reviewer"


def _salt(link: ShareLink) -> str:
    return f"share-reviewer:{link.code}"


def public(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """Rate limit, resolve the token (404 when dead), never cache, no indexing."""

    @wraps(view)
    def wrapper(
        request: HttpRequest, token: str, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        if not sharing.share_rate_allowed(client_address(request)):
            return HttpResponse(
                "Too many requests: wait a minute.",
                status=429,
                content_type="text/plain",
            )
        link = sharing.share_link_resolve(token)
        if link is None:
            raise Http404(
                "This link is not valid (it may have expired or been revoked)."
            )
        response = view(request, link, token, *args, **kwargs)
        add_never_cache_headers(response)
        response["X-Robots-Tag"] = "noindex, nofollow"
        # The token is in the address: never sent to other sites. (no-referrer would make browsers
        # send "Origin: null" with the forms, which the CSRF check rightly refuses.)
        response["Referrer-Policy"] = "same-origin"
        return response

    return wrapper


def _reviewer(request: HttpRequest, link: ShareLink) -> str | None:
    return request.get_signed_cookie(COOKIE, default=None, salt=_salt(link))


@require_GET
@public
def share_page(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    reviewer = _reviewer(request, link)
    if reviewer is None:
        return render(
            request, "exports/share/name.html", {"link": link, "token": token}
        )
    assets = sharing.share_assets(link)
    approvals = manifest.approvals_for([a.pk for a in assets])
    feedback: dict[int, list[ShareFeedback]] = {}
    for item in link.feedback.all():
        feedback.setdefault(item.asset_id, []).append(item)
    items = [
        {
            "asset": a,
            "record": manifest.asset_record(a, approvals),
            "feedback": feedback.get(a.pk, []),
        }
        for a in assets
    ]
    return render(
        request,
        "exports/share/page.html",
        {"link": link, "token": token, "reviewer": reviewer, "items": items},
    )


@require_POST
@public
def share_name(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    try:
        name = sharing.clean_reviewer_name(request.POST.get("name", ""))
    except ValidationError as exc:
        return render(
            request,
            "exports/share/name.html",
            {"link": link, "token": token, "error": exc.messages[0]},
            status=400,
        )
    response = redirect("exports:share-page", token)
    max_age = max(60, int((link.expires_at - link.created_at).total_seconds()))
    response.set_signed_cookie(
        COOKIE,
        name,
        salt=_salt(link),
        max_age=max_age,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
        path=reverse("exports:share-page", args=[token]),
    )
    return response


@require_GET
@public
def share_image(
    request: HttpRequest, link: ShareLink, token: str, code: UUID
) -> HttpResponseBase:
    asset = sharing.share_asset(link, code)
    if asset is None:  # the link grants exactly its assets
        raise Http404
    return serve_private_file(
        asset.file,
        content_type=asset.content_type or "image/png",
        filename=f"{asset.code.hex[:8]}.{asset.format or 'png'}",
        max_age=0,
    )


@require_GET
@public
def share_manifest(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    assets = sharing.share_assets(link)
    approvals = manifest.approvals_for([a.pk for a in assets])
    body = {
        "title": link.title,
        "shared_until": link.expires_at.isoformat(),
        "pack": str(link.pack.code) if link.pack else None,
        "presets": link.pack.presets if link.pack else [],
        "formats": link.pack.formats if link.pack else [],
        "digital_source_type": "trainedAlgorithmicMedia",
        "assets": [manifest.asset_record(a, approvals) for a in assets],
    }
    return JsonResponse(body, json_dumps_params={"indent": 2, "ensure_ascii": False})


@require_POST
@public
def share_decide(
    request: HttpRequest, link: ShareLink, token: str, code: UUID
) -> HttpResponseBase:
    asset = sharing.share_asset(link, code)
    if asset is None:
        raise Http404
    reviewer = _reviewer(request, link)
    if reviewer is None:
        return redirect("exports:share-page", token)
    try:
        sharing.share_feedback_record(
            link=link,
            asset=asset,
            reviewer=reviewer,
            kind=request.POST.get("kind", ""),
            comment=request.POST.get("comment", "")[:5000],
        )
    except (ValidationError, PermissionDenied) as exc:
        text = getattr(exc, "messages", None) or [str(exc) or "Not allowed."]
        return HttpResponse(text[0], status=400, content_type="text/plain")
    return redirect(
        reverse("exports:share-page", args=[token]) + f"#a-{asset.code.hex[:8]}"
    )


# --- Members: make and revoke links -------------------------------------------------------------


@require_POST
@member_required(Role.APPROVER)
def share_create(request: Any) -> HttpResponse:
    pack = None
    assets = None
    if code := request.POST.get("pack"):
        try:
            pack = get_in_workspace(request, ExportPack.objects.all(), code=UUID(code))
        except ValueError as exc:
            raise Http404 from exc
    else:
        codes = []
        for value in request.POST.getlist("asset"):
            try:
                codes.append(UUID(value))
            except ValueError:
                continue
        assets = list(Asset.objects.filter(workspace=request.workspace, code__in=codes))
        if not assets:
            raise Http404("Select images first.")
    try:
        days = int(request.POST.get("days") or 0) or None
        link, token = sharing.share_link_create(
            workspace=request.workspace,
            user=request.user,
            pack=pack,
            assets=assets,
            days=days,
        )
    except (ValidationError, ValueError) as exc:
        messages.error(request, getattr(exc, "messages", [str(exc)])[0])
        return redirect("exports:share-list")
    url = request.build_absolute_uri(reverse("exports:share-page", args=[token]))
    # Only the token's hash is kept: this is the one time the link is shown.
    request.session["share_new_url"] = url
    return redirect("exports:share-list")


@require_GET
@member_required()
def share_list(request: Any) -> HttpResponse:
    links = ShareLink.objects.for_workspace(request.workspace).prefetch_related(
        "feedback__asset"
    )[:100]
    return render(
        request,
        "exports/share/list.html",
        {
            "links": links,
            "new_url": request.session.pop("share_new_url", None),
            "can_share": request.membership.can_approve,
        },
    )


@require_POST
@member_required(Role.APPROVER)
def share_revoke(request: Any, code: UUID) -> HttpResponse:
    link = get_in_workspace(request, ShareLink.objects.all(), code=code)
    if sharing.share_link_revoke(link=link):
        messages.success(request, "Link revoked: it no longer opens.")
    return redirect("exports:share-list")
