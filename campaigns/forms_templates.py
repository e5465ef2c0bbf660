"""Forms for prompt templates: create, save a new version, and the "try it" preview.

Forms parse what people type (slot lines, parameter JSON); the services in
`campaigns.prompt_templates` decide what may be saved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from campaigns.models import Brand, Campaign, PromptKind, ReferenceRole, TemplateVersion
from campaigns.prompt_templates import format_slot
from campaigns.prompting import NAME_RE
from studio.forms import form_field
from studio.input_rules import loads_limited
from studio.models import Workspace

DEFAULT_PARAMETERS = {"model": "flux-2-pro", "width": 1024, "height": 1024}
MAX_VALUE_CHARS = 2000
# Default parameters are a handful of keys (model, width, height, seed, steps...).
MAX_PARAMETERS_CHARS = 10_000


def parse_slot_lines(text: str) -> list[dict[str, Any]]:
    """One slot per line: "name: role", a "?" anywhere marks it optional; a bare role names itself.

    "product: product", "style_ref: style?", "background?" → three slots. Raises ValidationError.
    """
    slots: list[dict[str, Any]] = []
    errors: list[str] = []
    roles = ", ".join(ReferenceRole.values)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        optional = "?" in line
        name, _, role = (part.strip() for part in line.replace("?", "").partition(":"))
        role = (role or name).lower()
        if not NAME_RE.match(name):
            errors.append(
                f"Line {number}: “{name}” is not a slot name (letters, digits and _, e.g. “product”)."
            )
        elif role not in ReferenceRole.values:
            errors.append(f"Line {number}: “{role}” is not a reference role ({roles}).")
        else:
            slots.append({"name": name, "role": role, "required": not optional})
    if errors:
        raise ValidationError(errors)
    return slots


def slots_as_lines(slots: Sequence[dict[str, Any]]) -> str:
    return "\n".join(format_slot(slot) for slot in slots)


def parameters_as_text(parameters: dict[str, Any]) -> str:
    return json.dumps(parameters, ensure_ascii=False, indent=2)


class TemplateContentForm(forms.Form):
    """What every version holds: kind, body, reference slots, default parameters and a note."""

    kind = forms.ChoiceField(
        choices=PromptKind.choices, initial=PromptKind.TEXT, widget=forms.RadioSelect
    )
    body = forms.CharField(
        label="Prompt",
        widget=forms.Textarea(
            attrs={"class": "code", "rows": 12, "spellcheck": "false"}
        ),
        help_text="Text: {variable} for values, {ref:slot} for “image N”, {{ and }} for literal braces. "
        "JSON: an object with scene, subjects, style, colors, lighting, composition, text_elements…; "
        "placeholders go inside string values.",
    )
    reference_slots = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"class": "code", "rows": 3, "spellcheck": "false"}
        ),
        help_text="One per line, in image order: “name: role”, with “?” for optional, e.g. “product: product” "
        "or “mood: style?”. Roles: " + ", ".join(ReferenceRole.values) + ".",
    )
    parameters = forms.CharField(
        label="Default parameters",
        required=False,
        widget=forms.Textarea(
            attrs={"class": "code", "rows": 5, "spellcheck": "false"}
        ),
        help_text="A JSON object, e.g. model, width, height (multiples of 16), seed.",
    )
    change_note = forms.CharField(
        max_length=300,
        required=False,
        help_text="What changed and why; shown in the version history.",
    )

    def clean_reference_slots(self) -> list[dict[str, Any]]:
        return parse_slot_lines(self.cleaned_data["reference_slots"])

    def clean_parameters(self) -> dict[str, Any]:
        text = self.cleaned_data["parameters"].strip()
        if not text:
            return {}
        value = loads_limited(
            text, max_chars=MAX_PARAMETERS_CHARS, what="The parameters"
        )
        if not isinstance(value, dict):
            raise ValidationError("Parameters must be a JSON object: { ... }.")
        return value


class TemplateCreateForm(TemplateContentForm):
    name = forms.CharField(max_length=160)
    brand = forms.ModelChoiceField(queryset=Brand.objects.none(), empty_label=None)
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.none(),
        required=False,
        label="Campaign (optional)",
        empty_label="None: brand-wide",
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    field_order = [
        "name",
        "brand",
        "campaign",
        "description",
        "kind",
        "body",
        "reference_slots",
        "parameters",
        "change_note",
    ]

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        form_field(
            self, "brand", forms.ModelChoiceField
        ).queryset = Brand.objects.filter(workspace=workspace)
        campaign_field = form_field(self, "campaign", forms.ModelChoiceField)
        campaign_field.queryset = Campaign.objects.filter(
            workspace=workspace
        ).select_related("brand")
        # Django looks label_from_instance up on the field instance, so this one overrides it.
        campaign_field.label_from_instance = (  # type: ignore[method-assign]
            lambda obj: f"{obj.brand.name} · {obj.name}"
        )
        self.fields["change_note"].initial = "First version"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        brand, campaign = data.get("brand"), data.get("campaign")
        if brand and campaign and campaign.brand_id != brand.pk:
            self.add_error(
                "campaign",
                f"“{campaign.name}” belongs to {campaign.brand.name}, not {brand.name}.",
            )
        return data


class TemplateVersionForm(TemplateContentForm):
    # The latest version number when the form was opened: saving refuses if a newer one appeared.
    based_on = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    HIDDEN_FIELD_LABELS = {
        "based_on": "The version this edit started from (a hidden field) is not valid",
    }

    @classmethod
    def initial_from(
        cls, version: TemplateVersion, *, latest_number: int
    ) -> dict[str, Any]:
        return {
            "kind": version.kind,
            "body": version.body,
            "reference_slots": slots_as_lines(version.reference_slots),
            "parameters": parameters_as_text(version.parameters)
            if version.parameters
            else "",
            "based_on": latest_number,
        }


class PreviewForm(forms.Form):
    """One input per variable of a version, plus whether to merge the brand kit."""

    use_brand = forms.BooleanField(
        required=False, initial=True, label="Add the brand palette and typography"
    )

    def __init__(self, *args: Any, variables: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variables = list(variables)
        for name in self.variables:
            # Not required: the renderer names each missing value itself, next to the result.
            self.fields[f"var_{name}"] = forms.CharField(
                label=name, required=False, max_length=MAX_VALUE_CHARS
            )

    def variable_fields(self) -> list[forms.BoundField]:
        return [self[f"var_{name}"] for name in self.variables]

    def values(self) -> dict[str, str]:
        return {
            name: self.cleaned_data.get(f"var_{name}", "") for name in self.variables
        }
