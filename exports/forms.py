from __future__ import annotations

from typing import Any

from django import forms

from campaigns.channels import CHANNEL_CHOICES
from exports.presets import parse_size
from exports.render import FORMATS
from studio.forms import form_field


class PackForm(forms.Form):
    presets = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    custom = forms.CharField(
        required=False,
        label="Extra sizes",
        help_text="Optional, comma-separated, e.g. 1600x500, 300x600",
    )
    formats = forms.MultipleChoiceField(
        choices=[(f, f.upper()) for f in FORMATS],
        initial=["jpeg"],
        widget=forms.CheckboxSelectMultiple,
    )
    all_statuses = forms.BooleanField(
        required=False, label="Include images that are not approved"
    )

    def __init__(
        self, *args: Any, preset_choices: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        form_field(self, "presets", forms.MultipleChoiceField).choices = preset_choices
        self.fields["presets"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        sizes = [s.strip() for s in data.get("custom", "").split(",") if s.strip()]
        for size in sizes:
            if parse_size(size) is None:
                self.add_error("custom", f"“{size}” is not a size like 1600x500.")
        data["names"] = [*data.get("presets", []), *sizes]
        if not data["names"]:
            raise forms.ValidationError("Choose at least one preset or size.")
        return data


class ProfileForm(forms.Form):
    channel_keys = forms.MultipleChoiceField(
        choices=CHANNEL_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Channel formats",
    )
    custom_presets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Sizes of the brand's own",
        help_text="One a line: key WIDTHxHEIGHT label, e.g. “shop-banner 1600x500 Shop banner”. "
        "A channel's key here changes that channel's size for this brand.",
    )
    embed_prompt = forms.BooleanField(
        required=False,
        label="Write the prompt into each image's metadata (description)",
    )

    def clean_custom_presets(self) -> list[dict]:
        presets = []
        for n, line in enumerate(self.cleaned_data["custom_presets"].splitlines(), 1):
            parts = line.split(None, 2)
            if not parts:
                continue
            size = parse_size(parts[1]) if len(parts) > 1 else None
            if size is None:
                raise forms.ValidationError(
                    f"Line {n}: write “key WIDTHxHEIGHT label”, e.g. shop-banner 1600x500."
                )
            label = parts[2] if len(parts) > 2 else parts[0]
            presets.append(
                {"key": parts[0], "label": label, "width": size[0], "height": size[1]}
            )
        return presets
