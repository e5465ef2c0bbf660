"""Catalog forms: the import upload and the gap batch. Forms validate; catalog services act."""

from __future__ import annotations

from typing import Any

from django import forms

from studio.forms import form_field


class ImportForm(forms.Form):
    csv_file = forms.FileField(label="Catalog CSV")
    images = forms.FileField(
        label="Images (ZIP, optional)",
        required=False,
        help_text="The files the image_<role> columns name; https URLs need no ZIP.",
    )

    def clean_images(self) -> Any:
        upload = self.cleaned_data.get("images")
        if upload and not upload.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload the images as one .zip file.")
        return upload


class GapBatchForm(forms.Form):
    """The choices are the brand's own shots and campaigns, so another workspace's are refused."""

    shot = forms.ChoiceField()
    campaign = forms.ChoiceField()
    target = forms.ChoiceField(label="Backend and model")
    per_product = forms.IntegerField(
        label="Images per product", min_value=1, max_value=8, initial=1
    )

    def __init__(
        self,
        *args: Any,
        shots: list[tuple[str, str]],
        campaigns: list[tuple[str, str]],
        targets: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        form_field(self, "shot", forms.ChoiceField).choices = shots
        form_field(self, "campaign", forms.ChoiceField).choices = campaigns
        form_field(self, "target", forms.ChoiceField).choices = targets
