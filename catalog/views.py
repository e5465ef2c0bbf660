"""Catalog pages: a brand's products and the import (upload → preview by line → confirm → progress),
coverage per product × shot with gap filters, the one-click batch for the gaps, export by product
and the results CSV.

Roles, checked here on the server: any member reads; editors and above import, batch and export.
Objects are fetched through get_in_workspace, so another workspace's brand or import is a 404.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from campaigns.models import Brand, Campaign
from catalog import coverage as coverage_mod
from catalog import exporting, services
from catalog.batching import catalog_gap_batch_create, other_variables
from catalog.forms import GapBatchForm, ImportForm
from catalog.models import CatalogImport, Product, Shot
from generation.batches.common import BatchRefused
from generation.batches.spec import Target
from generation.batches.targets import target_options
from studio import permissions
from studio.http import MemberRequest, wants_partial
from studio.tenancy import get_in_workspace, member_required

PRODUCTS_PER_PAGE = 50
IMPORTS_SHOWN = 5


def _brand(request: MemberRequest, code: UUID) -> Brand:
    return get_in_workspace(request, Brand.objects.all(), code=code)


def _skus(text: str) -> list[str]:
    """A pasted SKU list: one per line, or separated by commas, semicolons or spaces."""
    return [s for s in re.split(r"[\s,;]+", text or "") if s]


@require_GET
@member_required()
def catalog_page(request: MemberRequest, code: UUID) -> HttpResponse:
    brand = _brand(request, code)
    products = Product.objects.filter(brand=brand).prefetch_related("images__reference")
    page = Paginator(products, PRODUCTS_PER_PAGE).get_page(request.GET.get("page"))
    may_import = permissions.can(request.membership, "brand.edit")
    return render(
        request,
        "catalog/catalog.html",
        {
            "brand": brand,
            "page": page,
            "product_total": page.paginator.count,
            "imports": CatalogImport.objects.filter(brand=brand)[:IMPORTS_SHOWN],
            "form": ImportForm() if may_import else None,
        },
    )


@require_POST
@member_required()
def import_create(request: MemberRequest, code: UUID) -> HttpResponse:
    """Upload: store the files and run a dry run (the preview) in a worker; nothing is written."""
    permissions.require(request, "brand.edit")  # the rule the import form reads
    brand = _brand(request, code)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        products = Product.objects.filter(brand=brand)
        return render(
            request,
            "catalog/catalog.html",
            {
                "brand": brand,
                "page": Paginator(products, PRODUCTS_PER_PAGE).get_page(1),
                "product_total": products.count(),
                "imports": CatalogImport.objects.filter(brand=brand)[:IMPORTS_SHOWN],
                "form": form,
            },
            status=400,
        )
    job = services.catalog_import_job_request(
        brand=brand,
        csv_file=form.cleaned_data["csv_file"],
        images_file=form.cleaned_data["images"],
        dry_run=True,
        user=request.user,
    )
    return redirect("catalog:import-detail", job.code)


@require_GET
@member_required()
@vary_on_headers("HX-Request")
def import_detail(request: MemberRequest, code: UUID) -> HttpResponse:
    job = get_in_workspace(
        request, CatalogImport.objects.select_related("brand"), code=code
    )
    template = "catalog/import.html"
    if wants_partial(request):
        template += "#import_status"
    return render(
        request,
        template,
        {
            "job": job,
            "brand": job.brand,
            # The preview's confirm button: only once, and only if some row can go in.
            "can_confirm": job.dry_run
            and job.state == CatalogImport.State.SUCCEEDED
            and job.total > len(job.errors),
        },
    )


@require_POST
@member_required()
def import_confirm(request: MemberRequest, code: UUID) -> HttpResponse:
    """Run the previewed files for real (refused rows are left out, as the preview said)."""
    permissions.require(request, "brand.edit")  # the rule the Import button reads
    job = get_in_workspace(
        request, CatalogImport.objects.select_related("brand"), code=code
    )
    if not job.dry_run or job.state != CatalogImport.State.SUCCEEDED:
        messages.error(request, "Only a finished preview can be imported.")
        return redirect("catalog:import-detail", job.code)
    real = services.catalog_import_job_again(job=job, user=request.user)
    return redirect("catalog:import-detail", real.code)


def _shots(brand: Brand) -> list[Shot]:
    return list(Shot.objects.filter(brand=brand).select_related("template"))


def _gap_form(
    request: MemberRequest, brand: Brand, shots: list[Shot], data: Any = None
) -> GapBatchForm:
    campaigns = Campaign.objects.filter(brand=brand).order_by("-created_at")
    return GapBatchForm(
        data,
        shots=[(s.key, s.name) for s in shots],
        campaigns=[(str(c.code), c.name) for c in campaigns],
        targets=[(o.key, o.label) for o in target_options(workspace=request.workspace)],
    )


@require_GET
@member_required()
def coverage_page(request: MemberRequest, code: UUID) -> HttpResponse:
    brand = _brand(request, code)
    shots = _shots(brand)
    by_key = {s.key: s for s in shots}
    missing = by_key.get(request.GET.get("missing", ""))
    attribute = request.GET.get("attribute", "").strip()
    sku_text = request.GET.get("skus", "")
    rows = coverage_mod.coverage(brand, missing=missing)
    unknown: list[str] = []
    if attribute or sku_text.strip():
        chosen, unknown = coverage_mod.select_products(
            brand, skus=_skus(sku_text) or None, attribute=attribute
        )
        keep = {p.pk for p in chosen}
        rows = [r for r in rows if r.product.pk in keep]
    form = None
    variables: list[str] = []
    if permissions.can(request.membership, "batch.create") and missing is not None:
        form = _gap_form(request, brand, shots)
        form.initial = {"shot": missing.key}
        variables = other_variables(missing)
    return render(
        request,
        "catalog/coverage.html",
        {
            "brand": brand,
            "shots": shots,
            "rows": [
                (r.product, [(s, r.approved.get(s.pk, 0)) for s in shots]) for r in rows
            ],
            "missing": missing,
            "attribute": attribute,
            "sku_text": sku_text,
            "unknown": unknown,
            "gap_form": form,
            "variables": variables,
        },
    )


@require_POST
@member_required()
def gap_batch(request: MemberRequest, code: UUID) -> HttpResponse:
    """The one-click batch for the gaps: the shot's template over every product missing it."""
    permissions.require(request, "batch.create")  # the rule the gap form reads
    brand = _brand(request, code)
    shots = _shots(brand)
    form = _gap_form(request, brand, shots, request.POST)
    back = redirect("catalog:coverage", brand.code)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(str(e) for e in errors)}")
        return back
    shot = next(s for s in shots if s.key == form.cleaned_data["shot"])
    campaign = Campaign.objects.get(brand=brand, code=form.cleaned_data["campaign"])
    try:
        batch = catalog_gap_batch_create(
            campaign=campaign,
            shot=shot,
            target=Target.parse(form.cleaned_data["target"]),
            per_product=form.cleaned_data["per_product"],
            user=request.user,
            skus=_skus(request.POST.get("skus", "")) or None,
            attribute=request.POST.get("attribute", "").strip(),
            values={
                name: request.POST.get(f"value_{name}", "").strip()
                for name in other_variables(shot)
            },
        )
    except BatchRefused as exc:
        for message in exc.messages:
            messages.error(request, message)
        return back
    messages.success(request, f"Batch for the gaps in “{shot.name}” started.")
    return redirect("generation:batch-detail", batch.code)


@require_POST
@member_required()
def export_by_product(request: MemberRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "export.create")  # the rule the Export button reads
    brand = _brand(request, code)
    products = list(Product.objects.filter(brand=brand).order_by("sku"))
    try:
        pack = exporting.catalog_export_request(
            brand=brand, products=products, user=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("catalog:coverage", brand.code)
    return redirect("exports:pack-detail", pack.code)


@require_GET
@member_required()
def results_download(request: MemberRequest, code: UUID) -> HttpResponse:
    brand = _brand(request, code)
    response = HttpResponse(
        exporting.results_csv(brand=brand), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="catalog-results-{str(brand.code)[:8]}.csv"'
    )
    return response
