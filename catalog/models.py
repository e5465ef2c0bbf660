"""The product catalog: a brand's products (SKU, name, attributes), each with its own reference
images by role, the brand's shot list, which generation made which product's shot, and imports.

A product image is a row of the brand's reference library (campaigns.ReferenceImage), checked and
cleaned like every upload; ProductImage says whose image it is, in which role, and where it came
from (a file name in the uploaded ZIP or folder, or an https URL) with the checksum of the bytes
as they arrived, so a re-import skips what has not changed.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.db import models

from studio.models import Workspace

# The roles shops name their packshots by; any other image_<role> column is kept as it is named.
KNOWN_ROLES = ("front", "side", "back", "detail", "label", "on-model", "packshot")


class Product(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="products"
    )
    brand = models.ForeignKey(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="products"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    sku = models.CharField(max_length=100)
    name = models.CharField(max_length=300)
    # Every other CSV column: {"colour": "red", "material": "wool", "category": "scarves"}.
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "sku"], name="unique_sku_per_brand"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sku} · {self.name}"

    def template_values(self) -> dict[str, str]:
        """The product's fields as template variables: {product.sku}, {product.name}, ..."""
        values = {"product.sku": self.sku, "product.name": self.name}
        for key, value in (self.attributes or {}).items():
            values.setdefault(f"product.{key}", str(value))
        return values


class ProductImage(models.Model):
    class State(models.TextChoices):
        READY = "ready", "Ready"
        PENDING = "pending", "Fetching"  # an https URL a worker has not fetched yet
        FAILED = "failed", "Failed"

    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="images"
    )
    role = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField(default=0)  # column order in the CSV
    # The file name inside the ZIP/folder, or the https URL.
    source = models.CharField(max_length=2000)
    # sha256 of the bytes as they arrived (empty until a URL is fetched): unchanged is skipped.
    source_sha256 = models.CharField(max_length=64, blank=True)
    reference = models.ForeignKey(
        "campaigns.ReferenceImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="product_images",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.READY)
    error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "role"], name="one_image_per_product_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} {self.role}"

    @property
    def is_url(self) -> bool:
        return self.source.lower().startswith("https://")


class Shot(models.Model):
    """One entry of a brand's shot list: an image every product needs (hero on white, lifestyle)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    brand = models.ForeignKey(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="shots"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    key = models.SlugField(
        max_length=40
    )  # the export's file name: <sku>/<key>_<n>.<ext>
    name = models.CharField(max_length=120)
    # The template a gap batch uses (its latest version); null: chosen when batching.
    template = models.ForeignKey(
        "campaigns.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    width = models.PositiveIntegerField(default=1024)
    height = models.PositiveIntegerField(default=1024)
    # A marketplace main image: pure-white background and a minimum size are checked.
    marketplace_main = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "key"], name="unique_shot_key_per_brand"
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProductGeneration(models.Model):
    """Which product (and shot) a generation was made for; written with the catalog batch."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="generations"
    )
    shot = models.ForeignKey(
        Shot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generation = models.OneToOneField(
        "generation.Generation", on_delete=models.CASCADE, related_name="catalog_link"
    )

    class Meta:
        indexes = [models.Index(fields=["product", "shot"])]

    def __str__(self) -> str:
        return f"{self.product.sku} · {self.shot or '-'}"


class MarketplaceCheck(models.Model):
    """The marketplace preset's verdict on an asset made for a main-image shot."""

    asset = models.OneToOneField(
        "generation.Asset", on_delete=models.CASCADE, related_name="marketplace_check"
    )
    passed = models.BooleanField()
    problems = models.JSONField(default=list)
    checked_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "passed" if self.passed else "; ".join(self.problems)


class CatalogImport(models.Model):
    """One import (or its preview) run by a worker, with progress and the outcome per line."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    brand = models.ForeignKey(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="catalog_imports"
    )
    code = models.UUIDField(default=uuid4, unique=True, editable=False)
    csv_file = models.FileField(upload_to="catalog-imports/", max_length=300)
    images_file = models.FileField(
        upload_to="catalog-imports/", max_length=300, blank=True
    )
    dry_run = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    # [{"line": 7, "sku": "A-1", "message": "..."}]
    errors = models.JSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.code}"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0
