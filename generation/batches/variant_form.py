"""The "change one thing" form: the asset's values, reference images, seed, size and model,
each prefilled with what made the asset; generation/batches/change_one.py makes the variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import forms

from campaigns.models import ReferenceImage
from generation.batches.change_one import (
    FIELD_HEIGHT,
    FIELD_MODEL,
    FIELD_SEED,
    FIELD_WIDTH,
    Edits,
    slot_field,
    value_field,
)
from generation.batches.spec import MAX_SEED, Target
from generation.batches.targets import TargetOption, target_label
from generation.models import Generation

# A sanity bound before the model's own rules (checked by the backend when the variant is made).
MAX_SIDE = 8192


class VariantForm(forms.Form):
    seed = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_SEED,
        help_text=f"A whole number from 0 to {MAX_SEED:,}; the same seed keeps the composition.",
    )
    # Left out of a POST, each keeps what made the asset.
    model = forms.ChoiceField(required=False, label="Backend and model")
    width = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_SIDE, label="Width (px)"
    )
    height = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_SIDE, label="Height (px)"
    )

    def __init__(
        self,
        *args: Any,
        generation: Generation,
        variables: Mapping[str, str],
        targets: Sequence[TargetOption],
        slot_images: Mapping[str, Sequence[ReferenceImage]],
        free_prompt: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name, value in variables.items():
            self.fields[value_field(name)] = forms.CharField(
                label=name,
                initial=value,
                max_length=5000,
                widget=forms.Textarea(attrs={"rows": 2}),
            )
        if free_prompt is not None:
            self.fields["prompt"] = forms.CharField(
                initial=free_prompt,
                max_length=20_000,
                widget=forms.Textarea(attrs={"rows": 6, "class": "code"}),
            )
        current = Target(generation.backend, generation.model)
        choices = [(t.key, t.label) for t in targets]
        if current.key not in dict(choices):
            # The asset's own model stays choosable (kept as it is) even when its backend is
            # no longer configured; choosing it changes nothing.
            choices.insert(0, (current.key, target_label(current)))
        model = self.fields[FIELD_MODEL]
        assert isinstance(model, forms.ChoiceField)
        model.choices = choices
        model.initial = current.key
        self.fields[FIELD_SEED].initial = generation.seed
        self.fields[FIELD_WIDTH].initial = generation.width
        self.fields[FIELD_HEIGHT].initial = generation.height
        self.generation = generation
        # One reference slot: one image, picked by thumbnail (the template draws the images).
        self.reference_images: dict[str, ReferenceImage] = {}
        self.slot_names: list[str] = []
        for entry in generation.references or ():
            slot = entry.get("name")
            if not slot:
                continue  # a catalog row's own image: not a slot the template names
            images = list(slot_images.get(str(slot), ()))
            self.reference_images.update((str(ref.code), ref) for ref in images)
            choices = [(str(ref.code), str(ref)) for ref in images]
            if str(entry["code"]) not in dict(choices):
                choices.insert(
                    0, (str(entry["code"]), "The image used (no longer in the library)")
                )
            self.fields[slot_field(str(slot))] = forms.ChoiceField(
                label=str(slot),
                choices=choices,
                initial=str(entry["code"]),
                widget=forms.RadioSelect(attrs={"class": "reference-choice"}),
            )
            self.slot_names.append(str(slot))

    def value_fields(self) -> list[forms.BoundField]:
        return [
            self[name]
            for name in self.fields
            if name.startswith("value_") or name == "prompt"
        ]

    def reference_slot_fields(
        self,
    ) -> list[tuple[str, forms.BoundField, list[tuple[Any, ReferenceImage | None]]]]:
        """(slot, field, [(radio, library image)]) per reference slot of the asset."""
        return [
            (
                slot,
                self[slot_field(slot)],
                [
                    (radio, self.reference_images.get(str(radio.data["value"])))
                    for radio in self[slot_field(slot)]
                ],
            )
            for slot in self.slot_names
        ]

    def edits(self) -> Edits:
        data = self.cleaned_data
        values = {
            key.removeprefix("value_"): value
            for key, value in data.items()
            if key.startswith("value_")
        }
        seed = data.get(FIELD_SEED)
        return Edits(
            values=values or None,
            prompt=data.get("prompt"),
            # An emptied seed keeps the asset's (a random one stays random).
            seed=seed if seed is not None else self.generation.seed,
            width=data.get(FIELD_WIDTH),
            height=data.get(FIELD_HEIGHT),
            target=Target.parse(data[FIELD_MODEL]) if data.get(FIELD_MODEL) else None,
            references={slot: data[slot_field(slot)] for slot in self.slot_names}
            or None,
        )

    def add_service_errors(self, errors: Mapping[str, Sequence[str]]) -> None:
        for key, messages in errors.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)
