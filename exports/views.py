"""Asset pack pages: ask for a pack (from a campaign, a batch or the gallery's selection), follow
its progress, download it privately, list the workspace's packs, edit a brand's presets.

Roles, checked here on the server: any member sees and downloads packs; editors and above ask for
packs, cancel them and edit a brand's export presets.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from campaigns.models import Brand, Campaign
from exports import presets as presets_mod
from exports import services
from exports.forms import PackForm, ProfileForm
from exports.models import BrandExportProfile, ExportPack
from generation.models import Asset, Batch
from studio import permissions
from studio.http import MemberRequest, wants_partial
from studio.private_files import serve_private_file
from studio.tenancy import get_in_workspace, member_required

PACKS_SHOWN = 100


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value or "")
    except ValueError:
        return None


def _scope(request: MemberRequest) -> dict:
    """The campaign, batch or selection a pack is asked for (404 outside the workspace)."""
    data = request.POST if request.method == "POST" else request.GET
    workspace = request.workspace
    if code := _uuid(data.get("campaign")):
        campaign = get_in_workspace(
            request, Campaign.objects.select_related("brand"), code=code
        )
        return {"campaign": campaign, "brand": campaign.brand, "label": campaign.name}
    if code := _uuid(data.get("batch")):
        batch = get_in_workspace(
            request, Batch.objects.select_related("brand", "campaign"), code=code
        )
        return {
            "batch": batch,
            "brand": batch.brand,
            "label": f"{batch.campaign.name} – {batch}",
        }
    codes = [c for c in (_uuid(v) for v in data.getlist("asset")) if c]
    assets = list(
        Asset.objects.filter(workspace=workspace, code__in=codes).select_related(
            "generation__brand"
        )
    )
    if not assets:
        raise Http404("Select images first.")
    brands = {a.generation.brand for a in assets}
    brand = brands.pop() if len(brands) == 1 else None
    n = len(assets)
    return {
        "assets": assets,
        "brand": brand,
        "label": f"{n} selected image{'s' if n != 1 else ''}",
    }


@require_http_methods(["GET", "POST"])
@member_required()
def pack_new(request: MemberRequest) -> HttpResponse:
    permissions.require(request, "export.create")  # the rule the Export buttons read
    scope = _scope(request)
    brand = scope["brand"]
    choices = [
        (p.key, f"{p.label} ({p.width}×{p.height})")
        for p in presets_mod.brand_presets(brand)
    ]
    submitted = request.method == "POST" and "build" in request.POST
    form = PackForm(
        request.POST if submitted else None,
        preset_choices=choices,
        initial={"presets": [key for key, _ in choices], "formats": ["jpeg"]},
    )
    if submitted and form.is_valid():
        try:
            pack = services.export_pack_request(
                workspace=request.workspace,
                user=request.user,
                campaign=scope.get("campaign"),
                batch=scope.get("batch"),
                assets=scope.get("assets"),
                preset_names=form.cleaned_data["names"],
                formats=form.cleaned_data["formats"],
                all_statuses=form.cleaned_data["all_statuses"],
            )
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        else:
            return redirect("exports:pack-detail", pack.code)
    return render(
        request,
        "exports/new.html",
        {"form": form, "scope": scope, "brand": brand},
        status=400 if submitted else 200,
    )


@require_GET
@member_required()
def pack_list(request: MemberRequest) -> HttpResponse:
    packs = ExportPack.objects.for_workspace(request.workspace)
    if code := _uuid(request.GET.get("campaign")):
        packs = packs.filter(campaign__code=code)
    return render(
        request,
        "exports/list.html",
        {"packs": packs[:PACKS_SHOWN]},
    )


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def pack_detail(request: MemberRequest, code: UUID) -> HttpResponse:
    pack = get_in_workspace(
        request, ExportPack.objects.select_related("created_by"), code=code
    )
    template = "exports/detail.html"
    if wants_partial(request):
        template += "#pack_status"
    return render(
        request,
        template,
        {
            "pack": pack,
            "can_share": request.membership.can_approve,
            "share_days": settings.SHARE_LINK_DAYS,
        },
    )


@require_POST
@member_required()
def pack_cancel(request: MemberRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "export.create")
    pack = get_in_workspace(request, ExportPack.objects.all(), code=code)
    if services.export_pack_cancel(pack=pack):
        messages.success(request, "Export canceled.")
    return redirect("exports:pack-detail", pack.code)


@require_GET
@member_required()
def pack_download(request: MemberRequest, code: UUID) -> HttpResponseBase:
    pack = get_in_workspace(request, ExportPack.objects.all(), code=code)
    if pack.state != ExportPack.State.SUCCEEDED:
        raise Http404("This pack is not ready.")
    # Local files are streamed after this check; on S3 a short-lived presigned URL.
    return serve_private_file(
        pack.file,
        content_type="application/zip",
        filename=pack.download_name,
        max_age=0,
    )


@require_http_methods(["GET", "POST"])
@member_required()
def brand_presets(request: MemberRequest, code: UUID) -> HttpResponse:
    brand = get_in_workspace(request, Brand.objects.all(), code=code)
    profile = BrandExportProfile.objects.filter(brand=brand).first()
    if request.method == "POST":
        permissions.require(request, "brand.edit")  # the rule the presets form reads
        form = ProfileForm(request.POST)
        if form.is_valid():
            BrandExportProfile.objects.update_or_create(
                brand=brand, defaults=form.cleaned_data
            )
            messages.success(request, "Export presets saved.")
            return redirect("exports:brand-presets", brand.code)
    else:
        current = presets_mod.brand_presets(brand)
        form = ProfileForm(
            initial={
                "channel_keys": profile.channel_keys
                if profile
                else [p.key for p in current],
                "custom_presets": "\n".join(
                    f"{p['key']} {p['width']}x{p['height']} {p['label']}"
                    for p in (profile.custom_presets if profile else [])
                ),
                "embed_prompt": profile.embed_prompt if profile else True,
            }
        )
    return render(
        request,
        "exports/presets.html",
        {
            "brand": brand,
            "form": form,
            "presets": presets_mod.brand_presets(brand),
        },
    )
