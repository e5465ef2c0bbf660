"""POST /generations: the request's body to a queued generation, through the same services as the
studio's pages (template rendering, the engine's generation_create)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from api import lookups
from api.auth import require
from api.problems import Problem
from api.schemas import GenerationIn
from api.tokens import Caller
from campaigns.models import Campaign, TemplateVersion
from campaigns.prompt_templates import template_version_render
from campaigns.prompting import BrandKit, PromptError
from generation.engine import create as engine_create
from generation.models import Generation
from studio.models import Role


def generation_from_request(caller: Caller, payload: GenerationIn) -> Generation:
    """Queue the generation a POST /generations body asks for: a template version rendered with
    its variables and reference slots, or a prompt with references."""
    require(caller, Role.EDITOR)
    workspace = caller.workspace
    campaign = None
    if payload.campaign is not None:
        campaign = get_object_or_404(
            Campaign.objects.select_related("brand"),
            workspace=workspace,
            code=payload.campaign,
        )
    version = None
    brand = campaign.brand if campaign else None
    if payload.template_version is not None:
        version = get_object_or_404(
            TemplateVersion.objects.select_related("template__brand"),
            workspace=workspace,
            code=payload.template_version,
        )
        brand = version.template.brand
        if campaign is not None and campaign.brand_id != brand.pk:
            raise Problem(
                422,
                "validation",
                "The campaign and the template are of different brands.",
            )
        slots = lookups.references(caller, list(payload.reference_slots.values()))
        try:
            rendered = template_version_render(
                version=version,
                values=payload.variables,
                brand=BrandKit.from_brand(brand),
                filled_slots=list(payload.reference_slots),
            )
        except PromptError as exc:
            raise Problem(422, "validation", str(exc)) from exc
        if not rendered.can_dispatch:
            raise Problem(
                422,
                "validation",
                " ".join(p.message for p in rendered.dispatch_problems),
            )
        prompt = rendered.text
        references = [
            {
                "code": str(payload.reference_slots[name]),
                "role": slots[str(payload.reference_slots[name])].role,
                "name": name,
            }
            for name in rendered.reference_order
        ]
    else:
        prompt = payload.prompt or ""
        refs = lookups.references(caller, payload.references)
        references = [
            {"code": str(code), "role": refs[str(code)].role}
            for code in payload.references
        ]
    return engine_create.generation_create(
        workspace=workspace,
        backend=payload.route or payload.backend or "",
        fallback=payload.fallbacks,
        model=payload.model,
        prompt=prompt,
        width=payload.width,
        height=payload.height,
        seed=payload.seed,
        references=references,
        created_by=caller.user,
        campaign=campaign,
        brand=brand,
        template_version=version,
        owner_key=f"api:{caller.token.code}",
    )
