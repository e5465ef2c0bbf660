"""Forms for brand kits and campaigns."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from campaigns.channels import CHANNEL_CHOICES
from campaigns.models import Brand, Campaign, ReferenceImage, ReferenceRole
from studio.forms import form_field
from studio.input_rules import NUL_MESSAGE, has_nul
from studio.models import Workspace

HEX_RE = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
MAX_PALETTE = 12


def normalise_hex(value: str) -> str:
    """'#1a1a2e', '1A1A2E' and '#abc' become '#1A1A2E' / '#AABBCC'; anything else raises ValueError."""
    match = HEX_RE.match(value.strip())
    if not match:
        raise ValueError(value)
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits.upper()


def palette_row(name: str, hex_value: str) -> dict[str, str]:
    """One row of the brand form's palette, with what its colour picker shows (#rrggbb or "")."""
    try:
        picked = normalise_hex(hex_value).lower()
    except ValueError:
        picked = ""
    return {"name": name, "hex": hex_value, "picked": picked}


def split_words(text: str) -> list[str]:
    """Words/phrases separated by commas or new lines, trimmed, de-duplicated case-insensitively."""
    seen: dict[str, str] = {}
    for item in re.split(r"[,\n]", text):
        item = item.strip()
        if item and item.lower() not in seen:
            seen[item.lower()] = item
    return list(seen.values())


class BrandForm(forms.Form):
    name = forms.CharField(max_length=120)
    # Maxima of every brand-kit text (the ones merged into prompts: docs/security.md).
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000
    )
    typography_hints = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="How text should look in images, e.g. “bold geometric sans-serif headlines, generous letter spacing”.",
    )
    fonts = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One per line: family — usage, e.g. “Inter — headlines”.",
    )
    tone_of_voice = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=1000
    )
    words_to_use = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Comma or line separated.",
    )
    words_to_avoid = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Comma or line separated. Prompts that contain them are flagged.",
    )
    default_formats = forms.MultipleChoiceField(
        choices=CHANNEL_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    logo = forms.ModelChoiceField(
        queryset=ReferenceImage.objects.none(),
        required=False,
        help_text="Pick one of this brand's references with the role “logo”.",
    )

    def __init__(self, *args: Any, brand: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if brand is not None:
            form_field(
                self, "logo", forms.ModelChoiceField
            ).queryset = ReferenceImage.objects.filter(
                brand=brand, role=ReferenceRole.LOGO
            )
        else:
            del self.fields["logo"]
        self.palette_rows: list[dict[str, str]] = []

    def clean_fonts(self) -> list[dict[str, str]]:
        fonts = []
        for line in self.cleaned_data["fonts"].splitlines():
            if not line.strip():
                continue
            parts = re.split(r"\s+[—–-]\s+|\s*:\s*", line.strip(), maxsplit=1)
            family = parts[0].strip()
            usage = parts[1].strip() if len(parts) > 1 else ""
            fonts.append({"family": family[:80], "usage": usage[:120]})
        return fonts

    def clean_words_to_use(self) -> list[str]:
        return split_words(self.cleaned_data["words_to_use"])

    def clean_words_to_avoid(self) -> list[str]:
        return split_words(self.cleaned_data["words_to_avoid"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        names = (
            self.data.getlist("palette_name") if hasattr(self.data, "getlist") else []
        )
        hexes = (
            self.data.getlist("palette_hex") if hasattr(self.data, "getlist") else []
        )
        palette, problems, seen = [], [], set()
        for index, (name, value) in enumerate(zip(names, hexes, strict=False), start=1):
            name, value = name.strip(), value.strip()
            if has_nul(name) or has_nul(value):
                problems.append(NUL_MESSAGE.format(what=f"Colour {index}"))
                row = palette_row(name.replace("\x00", ""), value.replace("\x00", ""))
                self.palette_rows.append(row)
                self._mark(
                    row,
                    index,
                    "name" if has_nul(name) else "hex",
                    NUL_MESSAGE.format(what="This field"),
                )
                continue
            row = palette_row(name, value)
            self.palette_rows.append(row)
            if not name and value in ("", "#"):
                continue  # an unused row (new rows start with a lone "#")
            try:
                hex_value = normalise_hex(value)
            except ValueError:
                problems.append(
                    f"Colour {index}: “{value or '(empty)'}” is not a hex colour like #1A1A2E."
                )
                self._mark(
                    row,
                    index,
                    "hex",
                    f"“{value or '(empty)'}” is not a hex colour like #1A1A2E.",
                )
                continue
            if not name:
                problems.append(
                    f"Colour {index} ({hex_value}) needs a name, e.g. “Midnight”."
                )
                self._mark(row, index, "name", "Name this colour, e.g. “Midnight”.")
                continue
            if hex_value in seen:
                problems.append(
                    f"Colour {index}: {hex_value} is already in the palette."
                )
                self._mark(row, index, "hex", f"{hex_value} is already in the palette.")
                continue
            seen.add(hex_value)
            palette.append({"name": name[:40], "hex": hex_value})
        if len(palette) > MAX_PALETTE:
            problems.append(
                f"A palette holds at most {MAX_PALETTE} colours (FLUX.2 works best with 3–5)."
            )
        if problems:
            self.add_error(None, forms.ValidationError(problems))
        data["palette"] = palette
        return data

    def _mark(self, row: dict[str, str], index: int, field: str, message: str) -> None:
        """Mark the row's bad input (the template sets aria-invalid and shows the message by it)."""
        row.update(invalid=field, error=message, error_id=f"palette-{index}-error")


class CampaignForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(
        choices=CHANNEL_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "objective",
            "brief",
            "channels",
            "starts_on",
            "ends_on",
            "budget_cap",
            "status",
        ]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
            "brief": forms.Textarea(attrs={"rows": 4}),
            "budget_cap": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
        }
        help_texts = {
            "budget_cap": "USD. Generation batches that would exceed it are refused. Only admins can change it.",
        }

    def __init__(self, *args: Any, can_set_budget: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not can_set_budget:
            # Disabled fields ignore posted values: an editor cannot raise the cap by crafting a POST.
            self.fields["budget_cap"].disabled = True

    @property
    def budget_change_ignored(self) -> bool:
        """True when a non-admin posted a budget different from the current one (it was dropped)."""
        field = self.fields["budget_cap"]
        if not field.disabled or "budget_cap" not in self.data:
            return False
        try:
            posted = field.to_python(self.data.get("budget_cap"))
        except forms.ValidationError:
            return True
        return posted != self.get_initial_for_field(field, "budget_cap")


class CampaignCreateForm(CampaignForm):
    """A new campaign started from the campaigns list: its brand is picked here."""

    # Only this workspace's brands are choices: another workspace's id is "not a valid choice".
    brand = forms.ModelChoiceField(
        queryset=Brand.objects.none(),
        empty_label="Choose a brand",
        help_text="The campaign uses this brand's kit, references and templates.",
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        form_field(
            self, "brand", forms.ModelChoiceField
        ).queryset = Brand.objects.filter(workspace=workspace).order_by("name")


class CampaignStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Campaign.Status.choices)
