"""Forms of the batch builder and the re-run form ("change one thing" is variant_form.py).

The builder's fields depend on the template version (one values field per variable, one image
choice per reference slot, picked by thumbnail) and on the workspace (the backends it can use).
Parsing what people type happens here (generation/batches/parsing.py does the work); everything
that needs the backends, references and budget is checked by batch_preview
(generation/batches/preview.py), whose errors come back under the same names and are attached
here with `add_plan_errors`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import uuid4

from django import forms
from django.core.files.uploadedfile import UploadedFile

from campaigns.channels import CHANNELS_BY_KEY
from campaigns.models import Campaign, ReferenceImage, TemplateVersion
from generation.batches.parsing import (
    parse_rows,
    parse_seeds,
    parse_sizes,
    parse_values,
)
from generation.batches.spec import (
    FIELD_SEEDS,
    FIELD_SIZES,
    FIELD_TARGETS,
    FIXED,
    MATRIX,
    MAX_SEED,
    MAX_SEEDS,
    NON_FIELD,
    RANDOM,
    ROWS,
    BatchSpec,
    Seeds,
    Size,
    Target,
    matrix_field,
    reference_field,
)
from generation.batches.targets import TargetOption
from studio.input_rules import NUL_MESSAGE, has_nul

MAX_CSV_BYTES = 1024 * 1024
TEMPLATE_SIZE = "template"


def size_presets(
    *, campaign: Campaign | None, version: TemplateVersion
) -> dict[str, Size]:
    """The campaign's channels and the brand's default formats, plus the template's own size."""
    presets: dict[str, Size] = {}
    params = version.parameters or {}
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int):
        presets[TEMPLATE_SIZE] = Size(width, height, TEMPLATE_SIZE, "Template default")
    keys = list(campaign.channels if campaign else []) + list(
        version.template.brand.default_formats or []
    )
    for key in keys:
        channel = CHANNELS_BY_KEY.get(key)
        if channel is not None and key not in presets:
            presets[key] = Size(channel.width, channel.height, key, channel.label)
    return presets


# What a hidden field's error is about, said at the top of the builder (studio/form_errors.py).
HIDDEN_FIELD_LABELS = {
    "rng_seed": "The batch's random seed (a hidden field) was refused",
    "token": "The form's one-time token (a hidden field) is missing or invalid",
    "parent": "The batch this one re-runs (a hidden field) is not valid",
}


class BatchBuilderForm(forms.Form):
    name = forms.CharField(
        required=False,
        max_length=160,
        help_text="Optional; a name is made from the template otherwise.",
    )
    campaign = forms.ChoiceField(help_text="Spend counts against its budget.")
    mode = forms.ChoiceField(
        choices=[
            (MATRIX, "Matrix: every combination of the values"),
            (ROWS, "Rows: one variant per CSV row"),
        ],
        initial=MATRIX,
        widget=forms.RadioSelect,
    )
    rows = forms.CharField(
        required=False,
        max_length=500_000,
        widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false"}),
        help_text="A header line with the variable names, then one line per variant. "
        "Comma, semicolon or tab separated; quote values that contain the separator.",
    )
    rows_file = forms.FileField(
        required=False,
        label="…or upload a CSV file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}),
    )
    seed_mode = forms.ChoiceField(
        choices=[(RANDOM, "Random seeds"), (FIXED, "These seeds")],
        initial=RANDOM,
        widget=forms.RadioSelect,
    )
    seed_count = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SEEDS,
        initial=1,
        label="Seeds per combination",
    )
    seed_list = forms.CharField(
        required=False,
        max_length=2000,
        label="Seeds",
        help_text=f"Whole numbers from 0 to {MAX_SEED:,}, separated by commas.",
    )
    rng_seed = forms.IntegerField(
        min_value=0, max_value=MAX_SEED, widget=forms.HiddenInput
    )
    targets = forms.MultipleChoiceField(
        required=False,
        label="Backends and models",
        widget=forms.CheckboxSelectMultiple,
    )
    sizes = forms.MultipleChoiceField(
        required=False, label="Sizes", widget=forms.CheckboxSelectMultiple
    )
    custom_sizes = forms.CharField(
        required=False,
        max_length=500,
        label="Custom sizes",
        help_text="Width×height, comma separated, e.g. 1024x1024, 1536x1024. "
        "Each backend must be able to make them exactly.",
    )
    merge_brand = forms.BooleanField(
        required=False, initial=True, label="Add the brand palette and typography"
    )
    token = forms.UUIDField(widget=forms.HiddenInput)
    parent = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        version: TemplateVersion,
        campaigns: Sequence[Campaign],
        targets: Sequence[TargetOption],
        presets: Mapping[str, Size],
        references: Mapping[str, Sequence[ReferenceImage]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.presets = dict(presets)
        self.spec: BatchSpec | None = None
        # Plan errors with no field of their own ("references", "template", "budget").
        self.extra_errors: dict[str, list[str]] = {}
        self.choice_field("campaign").choices = [
            (str(c.code), c.name) for c in campaigns
        ]
        self.target_choices = [(t.key, t.label) for t in targets]
        self.choice_field("targets").choices = self.target_choices
        self.choice_field("sizes").choices = [
            (key, size.describe()) for key, size in self.presets.items()
        ]
        self.fields["rng_seed"].initial = random.SystemRandom().randint(0, MAX_SEED)
        self.fields["token"].initial = uuid4()
        for name in version.variables:
            self.fields[matrix_field(name)] = forms.CharField(
                required=False,
                max_length=20_000,
                label=name,
                widget=forms.Textarea(attrs={"rows": 3, "class": "values"}),
                help_text="One value per line.",
            )
        self.slot_fields: list[tuple[dict[str, Any], str]] = []
        # Picked by thumbnail: one radio per library image (a slot takes one), each labelled
        # with the image and its name (the template draws them from `reference_images`).
        self.reference_images: dict[str, ReferenceImage] = {}
        for slot in version.reference_slots or ():
            images = references.get(slot["name"], ())
            self.reference_images.update((str(ref.code), ref) for ref in images)
            required = bool(slot.get("required", True))
            field = forms.ChoiceField(
                required=False,
                label=slot["name"],
                choices=([] if required else [("", "None")])
                + [(str(ref.code), str(ref)) for ref in images],
                widget=forms.RadioSelect(attrs={"class": "reference-choice"}),
            )
            self.fields[reference_field(slot["name"])] = field
            self.slot_fields.append((slot, reference_field(slot["name"])))
        # The live preview swaps the whole builder (errors sit at their fields), but what the
        # user is typing or has picked must survive a swap that lands mid-edit: htmx keeps the
        # elements marked hx-preserve (matched by id) instead of the server's copies.
        for each in self.fields.values():
            if not each.widget.is_hidden:
                each.widget.attrs["hx-preserve"] = "true"

    def choice_field(self, name: str) -> forms.ChoiceField:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        return field

    # Groups for the template

    def variable_fields(self) -> list[forms.BoundField]:
        return [self[matrix_field(name)] for name in self.version.variables]

    def reference_slot_fields(
        self,
    ) -> list[tuple[dict[str, Any], forms.BoundField, list[tuple[Any, Any]]]]:
        """(slot, field, [(radio, library image or None for "none")]) per reference slot."""
        return [
            (
                slot,
                self[name],
                [
                    (radio, self.reference_images.get(str(radio.data["value"])))
                    for radio in self[name]
                ],
            )
            for slot, name in self.slot_fields
        ]

    def marked_fields(self) -> list[forms.BoundField]:
        """The visible fields that carry an error (what "the marked fields" refers to)."""
        return [
            self[name]
            for name in self.errors
            if name in self.fields and not self.fields[name].widget.is_hidden
        ]

    # Parsing

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        variables = list(self.version.variables)
        mode = data.get("mode") or MATRIX
        matrix = tuple(
            (name, parse_values(data.get(matrix_field(name)) or ""))
            for name in variables
        )
        rows: tuple[Any, ...] = ()
        if mode == ROWS:
            text = data.get("rows") or ""
            upload = data.get("rows_file")
            if isinstance(upload, UploadedFile):
                text = self._read_csv(upload) or text
            problems: list[str] = []
            rows, problems = parse_rows(text, variables)
            for message in problems:
                self.add_error("rows", message)
        if data.get("seed_mode") == FIXED:
            values, problems = parse_seeds(data.get("seed_list") or "")
            for message in problems:
                self.add_error("seed_list", message)
            seeds = Seeds(FIXED, values=values)
        else:
            seeds = Seeds(
                RANDOM,
                count=data.get("seed_count") or 1,
                rng_seed=data.get("rng_seed") or 0,
            )
        sizes = [self.presets[key] for key in data.get("sizes") or []]
        custom, problems = parse_sizes(data.get("custom_sizes") or "")
        for message in problems:
            self.add_error("custom_sizes", message)
        sizes += [s for s in custom if s not in sizes]
        references = {
            slot["name"]: data[name]
            for slot, name in self.slot_fields
            if data.get(name)
        }
        self.spec = BatchSpec(
            mode=mode,
            matrix=matrix,
            rows=rows,
            seeds=seeds,
            targets=tuple(Target.parse(key) for key in data.get("targets") or []),
            sizes=tuple(sizes),
            references=references,
            merge_brand=bool(data.get("merge_brand")),
        )
        return data

    def _read_csv(self, upload: UploadedFile) -> str:
        if upload.size and upload.size > MAX_CSV_BYTES:
            self.add_error(
                "rows_file",
                f"The file is {upload.size:,} bytes; the limit is {MAX_CSV_BYTES:,}.",
            )
            return ""
        raw = upload.read()
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # pragma: no cover - cp1252 decodes nearly anything
            self.add_error("rows_file", "The file is not text (UTF-8 CSV expected).")
            return ""
        if has_nul(text):
            self.add_error("rows_file", NUL_MESSAGE.format(what="The CSV file"))
            return ""
        # Show the uploaded rows in the text box, so a re-rendered form keeps them.
        data = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict when bound
        data["rows"] = text
        self.data = data
        return text

    def add_plan_errors(self, errors: Mapping[str, Sequence[str]]) -> None:
        """Attach batch_preview's errors to the fields that caused them."""
        seed_field = (
            "seed_list" if self.cleaned_data.get("seed_mode") == FIXED else "seed_count"
        )
        fields = {
            FIELD_SEEDS: seed_field,
            FIELD_TARGETS: "targets",
            FIELD_SIZES: "sizes",
        }
        for key, messages in errors.items():
            name = fields.get(key, key)
            for message in messages:
                if key == NON_FIELD:
                    self.add_error(None, message)
                elif name in self.fields and name in self.cleaned_data:
                    self.add_error(name, message)
                elif name in self.fields:
                    # Already failed its own parsing: keep both messages.
                    self.errors.setdefault(name, self.error_class()).append(message)
                else:
                    self.extra_errors.setdefault(key, []).append(message)


def builder_initial(
    *,
    version: TemplateVersion,
    campaign: Campaign | None,
    presets: Mapping[str, Size],
    targets: Sequence[TargetOption],
    spec: BatchSpec | None = None,
) -> dict[str, Any]:
    """Initial values: a previous batch's spec (re-run), else sensible defaults."""
    initial: dict[str, Any] = {
        "campaign": str(campaign.code) if campaign else "",
        "mode": MATRIX,
        "seed_mode": RANDOM,
        "seed_count": 1,
        "merge_brand": True,
    }
    params = version.parameters or {}
    if spec is None:
        model = str(params.get("model") or "flux-2-pro")
        keys = [t.key for t in targets]
        default = f"preview:{model}"
        initial["targets"] = [default if default in keys else keys[0]] if keys else []
        initial["sizes"] = list(presets)[:1]
        if isinstance(params.get("seed"), int):
            initial["seed_mode"] = FIXED
            initial["seed_list"] = str(params["seed"])
        return initial
    initial["mode"] = spec.mode
    for name, values in spec.matrix:
        initial[matrix_field(name)] = "\n".join(values)
    if spec.rows:
        names = list(version.variables)
        lines = [",".join(names)]
        for row in spec.rows:
            lines.append(",".join(_csv_cell(row.values.get(n, "")) for n in names))
        initial["rows"] = "\n".join(lines)
    initial["seed_mode"] = spec.seeds.mode
    initial["seed_count"] = spec.seeds.count
    initial["seed_list"] = ", ".join(str(s) for s in spec.seeds.values)
    initial["rng_seed"] = spec.seeds.rng_seed
    initial["targets"] = [t.key for t in spec.targets]
    initial["sizes"] = [s.key for s in spec.sizes if s.key in presets]
    initial["custom_sizes"] = ", ".join(
        f"{s.width}x{s.height}" for s in spec.sizes if s.key not in presets
    )
    for slot, code in spec.references.items():
        initial[reference_field(slot)] = code
    initial["merge_brand"] = spec.merge_brand
    return initial


def _csv_cell(value: str) -> str:
    if any(ch in value for ch in ',"\n;'):
        return '"' + value.replace('"', '""') + '"'
    return value


class RerunForm(forms.Form):
    axis = forms.ChoiceField(label="Change")
    values = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "class": "values"}),
        label="New values",
        help_text="Values: one per line. Seeds: 1, 2, 3 or “random 4”. Models: backend:model "
        "per line. Sizes: channel keys or 1024x768.",
    )

    def __init__(self, *args: Any, axes: Sequence[tuple[str, str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        axis = self.fields["axis"]
        assert isinstance(axis, forms.ChoiceField)
        axis.choices = [(key, label) for key, label, _ in axes]
