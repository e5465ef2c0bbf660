"""Request and response schemas (pydantic, through Django Ninja): what the OpenAPI document shows.

Requests are strict: unknown fields are refused (a typo must not be silently ignored), strings
and lists have bounds, and ids are UUIDs (the objects' codes).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field, model_validator

from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from campaigns.models import ReferenceRole
from generation.batches.spec import MAX_SEED

Seed = Field(default=None, ge=0, le=MAX_SEED)
Side = Field(default=1024, ge=64, le=4096)
Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class Problem(Schema):
    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[dict[str, str]] | None = None


# The error answers every authenticated operation documents (api/openapi.py adds the rest).
ERRORS = dict.fromkeys((401, 403, 404, 422, 429), Problem)


class ListQuery(Schema):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class PageOut(Schema):
    next_cursor: str | None


class BrandOut(Schema):
    id: UUID
    name: str
    description: str
    palette: list[Any]
    fonts: list[Any]
    typography_hints: str
    tone_of_voice: str
    words_to_use: list[Any]
    words_to_avoid: list[Any]
    default_formats: list[Any]
    created_at: dt.datetime
    updated_at: dt.datetime


class BrandPage(PageOut):
    items: list[BrandOut]


class ReferenceOut(Schema):
    id: UUID
    brand: UUID
    title: str
    original_name: str
    role: str
    tags: list[str]
    content_type: str
    width: int
    height: int
    byte_size: int
    sha256: str
    created_at: dt.datetime


class ReferencePage(PageOut):
    items: list[ReferenceOut]


class CampaignOut(Schema):
    id: UUID
    brand: UUID
    name: str
    objective: str
    brief: str
    channels: list[Any]
    starts_on: dt.date | None
    ends_on: dt.date | None
    budget_cap: str | None
    status: str
    created_at: dt.datetime


class CampaignPage(PageOut):
    items: list[CampaignOut]


class VersionOut(Schema):
    id: UUID
    template: UUID
    number: int
    kind: str
    body: str
    variables: list[str]
    reference_slots: list[dict[str, Any]]
    parameters: dict[str, Any]
    change_note: str
    created_at: dt.datetime


class VersionPage(PageOut):
    items: list[VersionOut]


class TemplateOut(Schema):
    id: UUID
    brand: UUID
    campaign: UUID | None
    name: str
    description: str
    latest_version: VersionOut | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TemplatePage(PageOut):
    items: list[TemplateOut]


class SlotIn(Strict):
    name: str = Name
    role: Literal[tuple(ReferenceRole.values)]  # type: ignore[valid-type]
    required: bool = True


class VersionIn(Strict):
    kind: Literal["text", "json"] = "text"
    body: str = Field(min_length=1, max_length=20_000)
    reference_slots: list[SlotIn] = Field(default_factory=list, max_length=10)
    parameters: dict[str, Any] = Field(default_factory=dict)
    change_note: str = Field(default="", max_length=300)
    based_on: int | None = Field(
        default=None,
        ge=1,
        description="The version number you edited: refused (409) if a newer one was saved since.",
    )


class CostOut(Schema):
    estimated: str | None
    actual: str | None
    currency: str


class TimingsOut(Schema):
    queued_at: dt.datetime | None
    submitted_at: dt.datetime | None
    running_at: dt.datetime | None
    finished_at: dt.datetime | None
    total_seconds: float | None


class ErrorOut(Schema):
    class_: str = Field(alias="class")
    message: str


class AssetBrief(Schema):
    id: UUID
    width: int
    height: int
    format: str
    content_type: str
    byte_size: int
    sha256: str
    review_status: str
    download_url: str = Field(
        description="Signed URL, no token needed, valid API_FILE_URL_TTL seconds."
    )
    file_url: str = Field(description="The file with `Authorization: Bearer`.")


class GenerationIn(Strict):
    prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    template_version: UUID | None = None
    variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    backend: str | None = Field(default=None, min_length=1, max_length=32)
    route: Literal["cheapest", "fastest"] | None = None
    fallbacks: list[str] = Field(default_factory=list, max_length=6)
    model: str = Field(min_length=1, max_length=64)
    width: int = Side
    height: int = Side
    seed: int | None = Seed
    references: list[UUID] = Field(default_factory=list, max_length=10)
    reference_slots: dict[str, UUID] = Field(
        default_factory=dict,
        max_length=10,
        description="With template_version: slot name -> reference id.",
    )
    campaign: UUID | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> GenerationIn:
        if (self.prompt is None) == (self.template_version is None):
            raise ValueError("Send exactly one of prompt and template_version.")
        if (self.backend is None) == (self.route is None):
            raise ValueError("Send exactly one of backend and route.")
        if self.prompt is not None and (self.variables or self.reference_slots):
            raise ValueError(
                "variables and reference_slots go with template_version, not prompt."
            )
        return self


class GenerationOut(Schema):
    id: UUID
    state: str
    terminal: bool
    prompt: str
    backend: str
    requested_backend: str
    fallbacks: list[str]
    model: str
    width: int
    height: int
    seed: int | None
    params: dict[str, Any]
    references: list[str]
    campaign: UUID | None
    batch: UUID | None
    template_version: UUID | None
    variables: dict[str, Any]
    cost: CostOut
    timings: TimingsOut
    error: dict[str, str] | None
    asset: AssetBrief | None


class GenerationPage(PageOut):
    items: list[GenerationOut]


class SizeIn(Strict):
    width: int = Field(ge=64, le=4096)
    height: int = Field(ge=64, le=4096)


class SeedsIn(Strict):
    count: int | None = Field(default=None, ge=1, le=100)
    values: list[int] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> SeedsIn:
        if (self.count is None) == (self.values is None):
            raise ValueError("Send exactly one of count and values.")
        for v in self.values or ():
            if not 0 <= v <= MAX_SEED:
                raise ValueError(f"Seeds are 0 to {MAX_SEED}.")
        return self


class BatchIn(Strict):
    campaign: UUID
    template_version: UUID
    name: str = Field(default="", max_length=160)
    matrix: dict[str, list[str]] | None = Field(
        default=None,
        description="Variable -> values; every combination is made (as the builder does).",
    )
    rows: list[dict[str, str]] | None = Field(
        default=None, max_length=1000, description="One object of values per variant."
    )
    targets: list[str] = Field(
        min_length=1,
        max_length=10,
        description="backend:model, e.g. preview:flux-2-pro",
    )
    sizes: list[SizeIn] = Field(min_length=1, max_length=10)
    seeds: SeedsIn = Field(default_factory=lambda: SeedsIn(count=1))
    references: dict[str, UUID] = Field(
        default_factory=dict, description="Slot name -> reference id."
    )
    merge_brand: bool = True

    @model_validator(mode="after")
    def _mode(self) -> BatchIn:
        if (self.matrix is None) == (self.rows is None):
            raise ValueError("Send exactly one of matrix and rows.")
        return self


class BatchProgressOut(Schema):
    total: int
    finished: int
    succeeded: int
    failed: int
    active: int
    counts: dict[str, int]
    spent: str | None
    eta_seconds: float | None


class BatchOut(Schema):
    id: UUID
    name: str
    campaign: UUID
    template_version: UUID | None
    state: str
    size: int
    estimate_total: str | None
    created_at: dt.datetime
    dispatched_at: dt.datetime | None
    finished_at: dt.datetime | None
    progress: BatchProgressOut | None = None


class BatchPage(PageOut):
    items: list[BatchOut]


class CancelOut(Schema):
    canceled: int
    batch: BatchOut


class BrandCheckOut(Schema):
    """The asset's brand check (docs/brand-checks.md): scores 0..1, 1 best, null where a check
    did not apply; state "unchecked" until the check has run."""

    state: str = Field(description="done, failed or unchecked")
    palette: float | None
    text: float | None
    logo: float | None
    product: float | None
    channels: float | None
    flags: list[str] = Field(
        description="off-palette, text-mismatch, logo-missing, product-missing, too-small"
    )
    needs_review: bool


class AssetOut(AssetBrief):
    generation: UUID
    campaign: UUID | None
    batch: UUID | None
    backend: str
    model: str
    prompt: str
    seed: int | None
    variables: dict[str, Any]
    starred: bool
    tags: list[str]
    reviewed_at: dt.datetime | None
    created_at: dt.datetime
    brand_check: BrandCheckOut


class AssetPage(PageOut):
    items: list[AssetOut]


class ReviewIn(Strict):
    comment: str = Field(default="", max_length=5000)


class ReviewStatusIn(Strict):
    status: Literal["approved", "rejected", "changes_requested", "pending"]
    comment: str = Field(default="", max_length=5000)


class CommentIn(Strict):
    body: str = Field(min_length=1, max_length=5000)


class CommentOut(Schema):
    id: int
    asset: UUID
    author: str
    body: str
    created_at: dt.datetime


ImageFormat = Literal["jpeg", "jpg", "png", "webp", "avif"]


def _default_formats() -> list[ImageFormat]:
    return ["jpeg"]


class ExportIn(Strict):
    """Exactly one of campaign, batch or assets; by default only approved assets are packed."""

    campaign: UUID | None = None
    batch: UUID | None = None
    assets: list[UUID] | None = Field(default=None, min_length=1, max_length=1000)
    presets: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list,
        max_length=30,
        description="Preset keys, aliases (square, story, 16x9...) or sizes like 1600x500; "
        "empty: the brand's presets.",
    )
    formats: list[ImageFormat] = Field(
        default_factory=_default_formats, min_length=1, max_length=4
    )
    all_statuses: bool = False

    @model_validator(mode="after")
    def one_selection(self) -> ExportIn:
        chosen = [x for x in (self.campaign, self.batch, self.assets) if x is not None]
        if len(chosen) != 1:
            raise ValueError("Give exactly one of campaign, batch or assets.")
        return self


class PresetOut(Schema):
    key: str
    label: str
    width: int
    height: int


class ExportProgressOut(Schema):
    done: int
    total: int
    percent: int


class ExportOut(Schema):
    id: UUID
    title: str
    state: str
    terminal: bool
    campaign: UUID | None
    batch: UUID | None
    assets: int
    presets: list[PresetOut]
    formats: list[str]
    all_statuses: bool
    progress: ExportProgressOut
    byte_size: int | None
    flagged: list[dict[str, Any]]
    error: str
    download_url: str | None
    file_url: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None


class ExportPage(PageOut):
    items: list[ExportOut]


class ExportCancelOut(Schema):
    canceled: bool
    export: ExportOut
