"""Prompt templates and their immutable versions: validating, creating, versioning, diffing, rendering.

Every change to a template's prompt, reference slots or default parameters is a new
`TemplateVersion`; versions are never edited, so an image's history always points at the exact
template that made it. Rendering itself is the pure `campaigns.prompting.render_prompt`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.models import (
    Brand,
    Campaign,
    PromptKind,
    PromptTemplate,
    ReferenceRole,
    TemplateVersion,
)
from campaigns.prompting import (
    NAME_RE,
    BrandKit,
    Problem,
    PromptError,
    RenderedPrompt,
    check_template,
    render_prompt,
)
from campaigns.textdiff import DiffLine, unified_lines

MAX_BODY_CHARS = 20_000
# BFL's API takes up to 8 reference images ([pro], [flex], [max]); each backend checks its own cap.
MAX_REFERENCE_SLOTS = 8
MAX_MEGAPIXELS = 4.0


@dataclass(frozen=True)
class TemplateContent:
    """What one version stores, validated and normalised."""

    kind: str
    body: str
    reference_slots: list[dict[str, Any]]
    parameters: dict[str, Any]
    variables: list[str]
    warnings: tuple[str, ...] = ()

    def same_as(self, version: TemplateVersion) -> bool:
        return (self.kind, self.body, self.reference_slots, self.parameters) == (
            version.kind,
            version.body,
            version.reference_slots,
            version.parameters,
        )


def template_content_clean(
    *,
    kind: str,
    body: str,
    reference_slots: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any],
) -> TemplateContent:
    """Validate and normalise a version's content. Raises ValidationError keyed by field.

    Text bodies are trimmed with line endings normalised; JSON bodies are stored pretty-printed
    (two-space indent, keys in authored order) so that diffs between versions read line by line.
    """
    errors: dict[str, list[str]] = {}
    if kind not in PromptKind.values:
        errors["kind"] = [f"Choose “text” or “json”, not “{kind}”."]
    slots, slot_errors = _clean_slots(reference_slots)
    if slot_errors:
        errors["reference_slots"] = slot_errors
    params, param_errors = _clean_parameters(parameters)
    if param_errors:
        errors["parameters"] = param_errors

    body = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    variables: list[str] = []
    warnings: tuple[str, ...] = ()
    if len(body) > MAX_BODY_CHARS:
        errors["body"] = [
            f"The prompt is {len(body):,} characters long; the limit is {MAX_BODY_CHARS:,}."
        ]
    elif "kind" not in errors:
        try:
            check = check_template(
                kind=kind, body=body, reference_slots=slots if not slot_errors else ()
            )
        except PromptError as exc:
            messages = exc.messages
            if slot_errors:
                # With broken slots every {ref:...} would look unknown; report the slots only.
                messages = [
                    p.message for p in exc.problems if p.code != "unknown_reference"
                ]
            if messages:
                errors["body"] = messages
        else:
            variables, warnings = list(check.variables), check.warnings
            if kind == PromptKind.JSON:
                body = json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    if errors:
        raise ValidationError(errors)
    return TemplateContent(
        kind=kind,
        body=body,
        reference_slots=slots,
        parameters=params,
        variables=variables,
        warnings=warnings,
    )


def prompt_template_create(
    *,
    brand: Brand,
    campaign: Campaign | None,
    name: str,
    description: str,
    kind: str,
    body: str,
    reference_slots: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any],
    change_note: str,
    author: User | None,
) -> PromptTemplate:
    """Create a template with its version 1. Raises ValidationError keyed by field."""
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if not name:
        errors["name"] = ["Give the template a name."]
    if campaign is not None and campaign.brand_id != brand.pk:
        errors["campaign"] = [f"“{campaign.name}” is a campaign of another brand."]
    try:
        content = template_content_clean(
            kind=kind, body=body, reference_slots=reference_slots, parameters=parameters
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        template = PromptTemplate.objects.create(
            workspace=brand.workspace,
            brand=brand,
            campaign=campaign,
            name=name,
            description=description.strip(),
            created_by=author,
        )
        _version_insert(
            template=template,
            number=1,
            content=content,
            change_note=change_note,
            author=author,
        )
    return template


def template_version_create(
    *,
    template: PromptTemplate,
    kind: str,
    body: str,
    reference_slots: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any],
    change_note: str,
    author: User | None,
    based_on: int | None = None,
) -> TemplateVersion:
    """Save the next version of a template. Raises ValidationError.

    Refused when nothing changed since the latest version, and, when `based_on` is given, when
    someone else saved a newer version since the editor loaded that one (no silent overwrite).
    """
    content = template_content_clean(
        kind=kind, body=body, reference_slots=reference_slots, parameters=parameters
    )
    with transaction.atomic():
        # Lock the template row so concurrent saves queue up here and each takes the next
        # number; the unique (template, number) constraint backs this up.
        PromptTemplate.objects.select_for_update().only("pk").get(pk=template.pk)
        latest = (
            TemplateVersion.objects.filter(template=template)
            .select_related("author")
            .order_by("-number")
            .first()
        )
        if latest is not None and based_on is not None and latest.number != based_on:
            who = latest.author.username if latest.author else "someone"
            raise ValidationError(
                f"Version {latest.number} was saved by {who} after you opened version {based_on}. "
                "Compare the versions, then save your changes on top of the latest one.",
                code="stale",
            )
        if latest is not None and content.same_as(latest):
            raise ValidationError(
                f"Nothing changed since version {latest.number}: change the prompt, the reference slots "
                "or the parameters to save a new version.",
                code="unchanged",
            )
        number = latest.number + 1 if latest is not None else 1
        version = _version_insert(
            template=template,
            number=number,
            content=content,
            change_note=change_note,
            author=author,
        )
        PromptTemplate.objects.filter(pk=template.pk).update(updated_at=timezone.now())
    return version


def _version_insert(
    *,
    template: PromptTemplate,
    number: int,
    content: TemplateContent,
    change_note: str,
    author: User | None,
) -> TemplateVersion:
    return TemplateVersion.objects.create(
        workspace_id=template.workspace_id,
        template=template,
        number=number,
        kind=content.kind,
        body=content.body,
        variables=content.variables,
        reference_slots=content.reference_slots,
        parameters=content.parameters,
        change_note=change_note.strip()[:300],
        author=author,
    )


def template_version_render(
    *,
    version: TemplateVersion,
    values: Mapping[str, str],
    brand: BrandKit | None,
    filled_slots: Sequence[str] | None = None,
    merge_brand: bool = True,
) -> RenderedPrompt:
    """Render one version: `render_prompt` with the version's kind, body and slots. Raises PromptError.

    Build the kit once with `BrandKit.from_brand(template.brand)` and pass it for every variant.
    """
    rendered = render_prompt(
        kind=version.kind,
        body=version.body,
        values=values,
        brand=brand,
        reference_slots=version.reference_slots,
        filled_slots=filled_slots,
        merge_brand=merge_brand,
    )
    limit = settings.STUDIO_PROMPT_MAX_CHARS
    if len(rendered.text) > limit:
        raise PromptError(
            [
                Problem(
                    "prompt_too_long",
                    f"The rendered prompt is {len(rendered.text):,} characters; the studio "
                    f"sends at most {limit:,} (STUDIO_PROMPT_MAX_CHARS).",
                )
            ]
        )
    return rendered


# --- Reference slots and parameters ------------------------------------------------------------


def format_slot(slot: Mapping[str, Any]) -> str:
    """One slot as its input line: "name: role", with "?" after the role when optional."""
    return f"{slot['name']}: {slot['role']}" + (
        "" if slot.get("required", True) else "?"
    )


def _clean_slots(
    slots: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    cleaned: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()
    if len(slots) > MAX_REFERENCE_SLOTS:
        errors.append(
            f"At most {MAX_REFERENCE_SLOTS} reference slots: FLUX.2 takes up to {MAX_REFERENCE_SLOTS} images."
        )
    roles = ", ".join(ReferenceRole.values)
    for slot in slots:
        name = str(slot.get("name", "")).strip()
        role = str(slot.get("role", "")).strip().lower()
        if not NAME_RE.match(name):
            errors.append(
                f"“{name}” is not a valid slot name: use letters, digits and _, starting with a letter."
            )
            continue
        if name in seen:
            errors.append(f"The slot name “{name}” is used twice.")
            continue
        seen.add(name)
        if role not in ReferenceRole.values:
            errors.append(f"Slot “{name}”: “{role}” is not a reference role ({roles}).")
            continue
        cleaned.append(
            {"name": name, "role": role, "required": bool(slot.get("required", True))}
        )
    return cleaned, errors


def _clean_parameters(
    parameters: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(parameters, Mapping):
        return {}, [
            'Parameters must be a JSON object, e.g. {"model": "flux-2-pro", "width": 1024}.'
        ]
    params = dict(parameters)
    errors: list[str] = []
    if "model" in params and (
        not isinstance(params["model"], str) or not params["model"].strip()
    ):
        errors.append("“model” must be a model name such as “flux-2-pro”.")
    for side in ("width", "height"):
        value = params.get(side)
        if value is None:
            continue
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < 64
            or value % 16
        ):
            errors.append(
                f"“{side}” must be a whole number of pixels, at least 64 and a multiple of 16."
            )
    width, height = params.get("width"), params.get("height")
    if (
        isinstance(width, int)
        and isinstance(height, int)
        and width * height > MAX_MEGAPIXELS * 1_000_000 * 1.05
    ):
        errors.append(
            f"{width}×{height} is more than FLUX.2's {MAX_MEGAPIXELS:g} megapixels."
        )
    seed = params.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or seed < 0
    ):
        errors.append("“seed” must be a whole number, 0 or more.")
    return params, errors


# --- Diff --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffSection:
    title: str
    lines: tuple[DiffLine, ...]

    @property
    def changed(self) -> bool:
        return any(line.kind in ("add", "del") for line in self.lines)

    @property
    def added(self) -> int:
        return sum(line.kind == "add" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "del" for line in self.lines)


def template_version_diff(
    *, old: TemplateVersion | None, new: TemplateVersion, context: int = 3
) -> list[DiffSection]:
    """A unified diff of body, reference slots, parameters and kind, section by section; a changed
    line carries its word-level changes (campaigns/textdiff.py).

    `old=None` diffs against nothing, so every line of `new` shows as added.
    """
    sections = [
        ("Prompt", lambda v: v.body.splitlines()),
        ("Reference slots", lambda v: [format_slot(s) for s in v.reference_slots]),
        (
            "Parameters",
            lambda v: json.dumps(
                v.parameters, ensure_ascii=False, indent=2, sort_keys=True
            ).splitlines(),
        ),
        ("Kind", lambda v: [v.get_kind_display()]),
    ]
    return [
        DiffSection(
            title,
            tuple(
                unified_lines(
                    lines(old) if old is not None else [], lines(new), context
                )
            ),
        )
        for title, lines in sections
    ]
