"""Change one thing: an asset's request again with one thing changed (a value, a reference,
the seed, the size or the model); editors and up."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from campaigns.models import ReferenceImage
from generation.batches.change_one import describe_variant_changes, variant_from_asset
from generation.batches.common import BatchRefused
from generation.batches.targets import target_options
from generation.batches.variant_form import VariantForm
from generation.gallery.queries import asset_for_user
from generation.models import Asset, Generation
from studio import permissions
from studio.http import StudioRequest, wants_partial
from studio.tenancy import member_required

VARIANT = "generation/batches/variant.html"


def _asset_for_user(request: StudioRequest, code: UUID) -> Asset:
    return asset_for_user(
        request,
        code,
        "generation__template_version__template",
        "generation__batch",
        "generation__campaign",
        "generation__brand",
        "generation__parent__asset",
    )


def _variant_form(
    request: StudioRequest, asset: Asset, data: Any = None
) -> VariantForm:
    generation = asset.generation
    version = generation.template_version
    roles = {
        str(r["name"]): r.get("role")
        for r in generation.references or ()
        if r.get("name")
    }
    library = ReferenceImage.objects.filter(
        workspace=request.workspace, brand=generation.brand
    )
    by_role: dict[str, list[ReferenceImage]] = {}
    for ref in library.filter(role__in=set(roles.values())) if roles else ():
        by_role.setdefault(ref.role, []).append(ref)
    values: dict[str, str] = {}
    if version is not None and generation.variables:
        values = {n: str(generation.variables.get(n, "")) for n in version.variables}
    return VariantForm(
        data,
        generation=generation,
        variables=values,
        # Made without a template (or its values): the prompt itself is what can change.
        free_prompt=None if values else generation.prompt,
        targets=target_options(workspace=request.workspace),
        slot_images={slot: by_role.get(str(role), []) for slot, role in roles.items()},
    )


def _variant_context(asset: Asset, form: VariantForm | None) -> dict[str, Any]:
    generation = asset.generation
    children = (
        Generation.objects.filter(
            parent=generation, workspace_id=generation.workspace_id
        )
        .select_related("asset")
        .order_by("-queued_at", "-pk")[:24]
    )
    return {
        "asset": asset,
        "generation": generation,
        "form": form,
        "children": children,
        "children_active": any(c.is_active for c in children),
    }


@require_http_methods(["GET", "POST"])
@member_required()
@vary_on_headers("HX-Request")
def asset_variant(request: StudioRequest, code: UUID) -> HttpResponse:
    permissions.require(request, "asset.variant")  # the rule "Change one thing" reads
    """Change one thing: the asset's request with the edited values, reference images, seed,
    size or model (everything not edited is kept).

    GET shows the form (the asset's values filled in) and the variants made so far, polled while
    any is running; POST queues the variant and comes back here.
    """
    asset = _asset_for_user(request, code)
    if request.method == "GET":
        if wants_partial(request):  # the polled list of variants: no form to build
            return render(
                request, f"{VARIANT}#variant_list", _variant_context(asset, None)
            )
        context = _variant_context(asset, _variant_form(request, asset))
        return render(request, VARIANT, context)
    form = _variant_form(request, asset, request.POST)
    if form.is_valid():
        try:
            generation = variant_from_asset(
                asset=asset, user=request.user, edits=form.edits()
            )
        except BatchRefused as exc:
            form.add_service_errors(exc.errors)
        else:
            changed = describe_variant_changes(generation.changes)
            messages.success(request, f"Variant queued: only {changed} changed.")
            return redirect("generation:asset-variant", asset.code)
    return render(request, VARIANT, _variant_context(asset, form))
