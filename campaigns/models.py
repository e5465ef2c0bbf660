"""The creative domain: brands and their kits, reference libraries, campaigns, prompt templates.

Every model carries its workspace directly so each query can be scoped with one filter.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from studio.models import Workspace


class Tag(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="tags"
    )
    name = models.CharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="unique_tag_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Brand(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="brands"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # [{"name": "Midnight", "hex": "#1A1A2E"}, ...]; hex is normalised to upper case #RRGGBB.
    palette = models.JSONField(default=list, blank=True)
    # [{"family": "Inter", "usage": "headlines"}, ...]
    fonts = models.JSONField(default=list, blank=True)
    typography_hints = models.TextField(blank=True)
    tone_of_voice = models.TextField(blank=True)
    words_to_use = models.JSONField(default=list, blank=True)
    words_to_avoid = models.JSONField(default=list, blank=True)
    # Keys of campaigns.channels.CHANNEL_FORMATS.
    default_formats = models.JSONField(default=list, blank=True)
    logo = models.ForeignKey(
        "ReferenceImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="unique_brand_name_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def format_objects(self) -> list[Any]:
        from campaigns.channels import CHANNELS_BY_KEY

        return [
            CHANNELS_BY_KEY[key]
            for key in self.default_formats
            if key in CHANNELS_BY_KEY
        ]


class ReferenceRole(models.TextChoices):
    PRODUCT = "product", "Product"
    CHARACTER = "character", "Character"
    STYLE = "style", "Style"
    BACKGROUND = "background", "Background"
    LOGO = "logo", "Logo"
    POSE = "pose", "Pose"


def reference_upload_to(instance: ReferenceImage, filename: str) -> str:
    return f"references/{instance.workspace.code}/{instance.brand.code}/{instance.code}/{filename}"


class ReferenceImageQuerySet(models.QuerySet["ReferenceImage"]):
    def with_role(self, role: str) -> ReferenceImageQuerySet:
        return self.filter(role=role) if role else self

    def with_tag(self, tag: str) -> ReferenceImageQuerySet:
        return self.filter(tags__name=tag) if tag else self


class ReferenceImage(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="references"
    )
    brand = models.ForeignKey(
        Brand, on_delete=models.CASCADE, related_name="references"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    role = models.CharField(
        max_length=16, choices=ReferenceRole.choices, default=ReferenceRole.PRODUCT
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="references")
    # The stored file is the cleaned image (orientation applied, metadata stripped, RGB/RGBA).
    file = models.FileField(upload_to=reference_upload_to, max_length=300)
    thumbnail = models.FileField(
        upload_to=reference_upload_to, max_length=300, blank=True
    )
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    # sha256 of the uploaded bytes: the same file uploaded twice to a brand is recognised.
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReferenceImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "sha256"], name="unique_reference_per_brand"
            )
        ]
        indexes = [models.Index(fields=["brand", "role"])]

    def __str__(self) -> str:
        return self.title or self.original_name or str(self.code)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        ARCHIVED = "archived", "Archived"

    class Objective(models.TextChoices):
        AWARENESS = "awareness", "Awareness"
        CONSIDERATION = "consideration", "Consideration"
        CONVERSION = "conversion", "Conversion / sales"
        LAUNCH = "launch", "Product launch"
        RETENTION = "retention", "Retention / loyalty"
        ENGAGEMENT = "engagement", "Engagement"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="campaigns"
    )
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="campaigns")
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    name = models.CharField(max_length=160)
    objective = models.CharField(
        max_length=20, choices=Objective.choices, default=Objective.AWARENESS
    )
    brief = models.TextField(blank=True)
    channels = models.JSONField(default=list, blank=True)
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    # USD; generation spend is checked against it before a batch is dispatched.
    budget_cap = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValidationError(
                {"ends_on": "The campaign cannot end before it starts."}
            )
        if self.budget_cap is not None and self.budget_cap < Decimal("0"):
            raise ValidationError({"budget_cap": "A budget cannot be negative."})

    @property
    def channel_objects(self) -> list[Any]:
        from campaigns.channels import CHANNELS_BY_KEY

        return [CHANNELS_BY_KEY[key] for key in self.channels if key in CHANNELS_BY_KEY]


class PromptKind(models.TextChoices):
    TEXT = "text", "Text with {variables}"
    JSON = "json", "Structured JSON prompt"


class PromptTemplate(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="prompt_templates"
    )
    brand = models.ForeignKey(
        Brand, on_delete=models.CASCADE, related_name="prompt_templates"
    )
    campaign = models.ForeignKey(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="prompt_templates",
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    name = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self) -> TemplateVersion | None:
        return self.versions.order_by("-number").first()


class TemplateVersion(models.Model):
    """One immutable version of a prompt template. Editing a template makes a new version."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    template = models.ForeignKey(
        PromptTemplate, on_delete=models.CASCADE, related_name="versions"
    )
    # Public id (the API names versions by it); uuid4 like every other addressable object.
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    number = models.PositiveIntegerField()
    kind = models.CharField(
        max_length=8, choices=PromptKind.choices, default=PromptKind.TEXT
    )
    # For kind=text: the text with {variables}. For kind=json: the JSON document, pretty-printed.
    body = models.TextField()
    # Derived when saved, in order of first appearance.
    variables = models.JSONField(default=list)
    # [{"name": "product", "role": "product", "required": true}, ...]; `{ref:name}` in the body
    # renders as "image N", FLUX.2's way of pointing at the N-th reference image.
    reference_slots = models.JSONField(default=list, blank=True)
    # Default generation parameters, e.g. {"model": "flux-2-pro", "width": 1024, "height": 1024}.
    parameters = models.JSONField(default=dict, blank=True)
    change_note = models.CharField(max_length=300, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "number"], name="unique_version_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Versions are history: what made an image must stay readable exactly as it was.
        if self.pk is not None:
            raise ValidationError(
                "Template versions are immutable; save a new version instead."
            )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValidationError(
            "Template versions are immutable and cannot be deleted one by one."
        )
