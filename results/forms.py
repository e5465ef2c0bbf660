"""The upload form and the column-mapping form of a results import."""

from __future__ import annotations

from typing import Any

from django import forms

from results import platforms, services
from studio.forms import form_field


class UploadForm(forms.Form):
    file = forms.FileField(label="Export (CSV)")
    mapping = forms.ChoiceField(
        label="Columns",
        required=False,
        help_text="Guessed from the header unless you choose.",
    )

    def __init__(self, *args: Any, workspace: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        form_field(self, "mapping", forms.ChoiceField).choices = [
            ("", "Guess from the header")
        ] + [(name, name) for name in services.mapping_choices(workspace)]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > platforms.MAX_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {platforms.MAX_BYTES // (1024 * 1024)} MB."
            )
        return upload


class MappingForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)
    source = forms.CharField(widget=forms.HiddenInput, required=False, max_length=80)
    save_as = forms.CharField(
        label="Save this mapping as",
        required=False,
        max_length=80,
        help_text="Optional: the next export from this platform is read the same way.",
    )

    def __init__(self, *args: Any, header: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "— not in this file —")] + [(c, c) for c in header]
        for role in platforms.ROLES:
            self.fields[role] = forms.ChoiceField(
                label=platforms.ROLE_LABELS[role],
                choices=choices,
                required=role in platforms.REQUIRED,
            )

    def clean_save_as(self) -> str:
        value = self.cleaned_data.get("save_as", "")
        if "\x00" in value:
            raise forms.ValidationError("The name holds a NUL character.")
        return value.strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        chosen = [data.get(role) for role in platforms.ROLES if data.get(role)]
        if len(chosen) != len(set(chosen)):
            raise forms.ValidationError("Each column can play one role only.")
        return data

    def columns(self) -> dict[str, str]:
        return {
            role: self.cleaned_data[role]
            for role in platforms.ROLES
            if self.cleaned_data.get(role)
        }
