"""Brand kits: list, create, view, edit, delete, and the palette stylesheet."""

from __future__ import annotations

import hashlib
from uuid import UUID

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns import services
from campaigns.forms import BrandForm, palette_row
from campaigns.models import (
    Brand,
    Campaign,
    PromptTemplate,
    ReferenceImage,
    ReferenceRole,
)
from studio.http import StudioRequest
from studio.models import Role
from studio.permissions import require
from studio.tenancy import get_in_workspace, member_required


def _brand_for_user(request: StudioRequest, code: UUID) -> Brand:
    return get_in_workspace(request, Brand.objects.select_related("logo"), code=code)


def _initial(brand: Brand) -> dict[str, object]:
    return {
        "name": brand.name,
        "description": brand.description,
        "typography_hints": brand.typography_hints,
        "fonts": "\n".join(
            f"{f['family']} — {f['usage']}" if f.get("usage") else f["family"]
            for f in brand.fonts
        ),
        "tone_of_voice": brand.tone_of_voice,
        "words_to_use": ", ".join(brand.words_to_use),
        "words_to_avoid": ", ".join(brand.words_to_avoid),
        "default_formats": brand.default_formats,
        "logo": brand.logo_id,
    }


@require_GET
@member_required()
def brand_list(request: StudioRequest) -> HttpResponse:
    brands = Brand.objects.filter(workspace=request.workspace).annotate(
        reference_count=Count("references", distinct=True),
        campaign_count=Count("campaigns", distinct=True),
    )
    return render(request, "campaigns/brands/list.html", {"brands": brands})


@require_http_methods(["GET", "POST"])
@member_required()
def brand_create(request: StudioRequest) -> HttpResponse:
    # The rule the "New brand" buttons read (studio/permissions.py).
    require(request, "brand.create")
    assert request.workspace is not None
    form = BrandForm(request.POST or None)
    palette_rows = [palette_row("", "#") for _ in range(3)]
    if request.method == "POST":
        if form.is_valid():
            try:
                brand = services.brand_create(
                    workspace=request.workspace,
                    user=request.user,
                    fields=form.cleaned_data,
                )
            except services.BrandNameTaken:
                form.add_error(
                    "name", "This workspace already has a brand with that name."
                )
            else:
                messages.success(
                    request, f"Brand “{brand.name}” created. Add reference images next."
                )
                return redirect("campaigns:brand-detail", brand.code)
        palette_rows = form.palette_rows or palette_rows
    return render(
        request,
        "campaigns/brands/form.html",
        {"form": form, "palette_rows": palette_rows, "brand": None},
    )


@require_GET
@member_required()
def brand_detail(request: StudioRequest, code: UUID) -> HttpResponse:
    brand = _brand_for_user(request, code)
    references = ReferenceImage.objects.filter(brand=brand)
    role_counts = dict(
        references.values_list("role").annotate(n=Count("id")).values_list("role", "n")
    )
    context = {
        "brand": brand,
        "recent_references": references[:8],
        "reference_total": sum(role_counts.values()),
        "role_counts": [
            (label, role_counts.get(value, 0), value)
            for value, label in ReferenceRole.choices
        ],
        "campaigns": Campaign.objects.filter(brand=brand),
        "templates": PromptTemplate.objects.filter(brand=brand).annotate(
            version_count=Count("versions")
        ),
    }
    return render(request, "campaigns/brands/detail.html", context)


@require_http_methods(["GET", "POST"])
@member_required()
def brand_edit(request: StudioRequest, code: UUID) -> HttpResponse:
    require(request, "brand.edit")  # the rule the brand page's Edit kit button reads
    brand = _brand_for_user(request, code)
    form = BrandForm(request.POST or None, initial=_initial(brand), brand=brand)
    palette_rows = [
        *(palette_row(c.get("name", ""), c.get("hex", "")) for c in brand.palette),
        palette_row("", "#"),
    ]
    if request.method == "POST":
        if form.is_valid():
            try:
                services.brand_update(brand=brand, fields=form.cleaned_data)
            except services.BrandNameTaken:
                form.add_error(
                    "name", "This workspace already has a brand with that name."
                )
            else:
                messages.success(request, "Brand kit saved.")
                return redirect("campaigns:brand-detail", brand.code)
        palette_rows = form.palette_rows
    return render(
        request,
        "campaigns/brands/form.html",
        {"form": form, "palette_rows": palette_rows, "brand": brand},
    )


@require_POST
@member_required()
def brand_delete(request: StudioRequest, code: UUID) -> HttpResponse:
    require(request, "brand.delete")  # the rule the brand page's Delete section reads
    brand = _brand_for_user(request, code)
    if request.POST.get("confirm_name", "").strip() != brand.name:
        messages.error(
            request, f"Type the brand's name (“{brand.name}”) to confirm deleting it."
        )
        return redirect("campaigns:brand-detail", brand.code)
    name = brand.name
    services.brand_delete(brand=brand)
    messages.success(request, f"Brand “{name}” and everything in it were deleted.")
    return redirect("campaigns:brand-list")


@require_GET
@member_required(Role.EDITOR)
def brand_palette_row(request: StudioRequest) -> HttpResponse:
    """One empty palette row, appended by the brand form's “Add colour” button."""
    return TemplateResponse(
        request,
        "campaigns/brands/form.html#palette_row",
        {"row": palette_row("", "#")},
    )


@require_GET
@member_required()
def palette_css(request: StudioRequest) -> HttpResponse:
    """Swatch colours as classes (.sw-1A1A2E), because the CSP forbids inline style attributes."""
    hexes: set[str] = set()
    for palette in Brand.objects.filter(workspace=request.workspace).values_list(
        "palette", flat=True
    ):
        hexes.update(c["hex"] for c in palette if isinstance(c, dict) and c.get("hex"))
    rules = [f".sw-{h[1:]}{{background:{h}}}" for h in sorted(hexes)]
    response = HttpResponse("\n".join(rules) + "\n", content_type="text/css")
    response["Cache-Control"] = "private, max-age=86400"
    response["ETag"] = (
        '"' + hashlib.sha256("".join(rules).encode()).hexdigest()[:16] + '"'
    )
    return response
