"""Brand-check results per asset, and per-brand thresholds that flag an asset for review."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from studio.models import Workspace

_UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class BrandCheckPolicy(models.Model):
    """A brand's thresholds: a score under its minimum raises that flag (and needs review).

    Brands without a row use the CHECKS_* settings' defaults (BrandCheckPolicy.for_brand)."""

    brand = models.OneToOneField(
        "campaigns.Brand", on_delete=models.CASCADE, related_name="check_policy"
    )
    palette_min = models.FloatField(validators=_UNIT)
    text_min = models.FloatField(validators=_UNIT)
    logo_min = models.FloatField(validators=_UNIT)
    product_min = models.FloatField(validators=_UNIT)
    # CIEDE2000 distance under which a colour counts as the brand colour (about 2: barely visible;
    # 10: clearly a shade of it).
    delta_e = models.FloatField(
        validators=[MinValueValidator(0.5), MaxValueValidator(50)]
    )

    class Meta:
        verbose_name = "brand check thresholds"
        verbose_name_plural = "brand check thresholds"

    def __str__(self) -> str:
        return f"Check thresholds of {self.brand}"

    @classmethod
    def defaults(cls) -> dict[str, float]:
        return {
            "palette_min": float(settings.CHECKS_PALETTE_MIN),
            "text_min": float(settings.CHECKS_TEXT_MIN),
            "logo_min": float(settings.CHECKS_LOGO_MIN),
            "product_min": float(settings.CHECKS_PRODUCT_MIN),
            "delta_e": float(settings.CHECKS_DELTA_E),
        }

    @classmethod
    def for_brand(cls, brand: Any) -> BrandCheckPolicy:
        """The brand's saved thresholds, or an unsaved row holding the defaults."""
        if brand is not None:
            policy = cls.objects.filter(brand=brand).first()
            if policy is not None:
                return policy
        return cls(brand=brand, **cls.defaults())


class CheckState(models.TextChoices):
    DONE = "done", "Checked"
    FAILED = "failed", "Check failed"


class AssetCheckQuerySet(models.QuerySet["AssetCheck"]):
    def flagged(self) -> AssetCheckQuerySet:
        return self.filter(needs_review=True)


class AssetCheck(models.Model):
    """One asset's brand check (written by checks.services.asset_check_run, update_or_create).

    Scores are 0..1 (1 best), null where the check did not apply (no palette, no quoted text,
    no logo or product sent, no channel presets). `details` holds everything measured (what the
    asset page shows; the same shape `manage.py brand_check --json` prints)."""

    State = CheckState

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    asset = models.OneToOneField(
        "generation.Asset", on_delete=models.CASCADE, related_name="brand_check"
    )
    state = models.CharField(max_length=8, choices=CheckState.choices)
    # The file checked: a re-ingested, different file is checked again, the same one is not.
    sha256 = models.CharField(max_length=64)

    palette_score = models.FloatField(null=True, blank=True)
    text_score = models.FloatField(null=True, blank=True)
    logo_score = models.FloatField(null=True, blank=True)
    product_score = models.FloatField(null=True, blank=True)
    channel_score = models.FloatField(null=True, blank=True)

    # Flags under the brand's thresholds (gallery filters and badges).
    off_palette = models.BooleanField(default=False)
    text_mismatch = models.BooleanField(default=False)
    logo_missing = models.BooleanField(default=False)
    product_missing = models.BooleanField(default=False)
    too_small = models.BooleanField(default=False)
    needs_review = models.BooleanField(default=False)

    details = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    checked_at = models.DateTimeField(auto_now=True)

    objects = AssetCheckQuerySet.as_manager()

    class Meta:
        indexes = [
            # The gallery's "needs review" filter: flagged assets are the few.
            models.Index(
                fields=["asset"], condition=Q(needs_review=True), name="check_flagged"
            )
        ]

    def __str__(self) -> str:
        return f"Brand check of asset {self.asset_id} ({self.state})"

    @property
    def flags(self) -> list[str]:
        names = {
            "off_palette": "Off-palette",
            "text_mismatch": "Text mismatch",
            "logo_missing": "Logo missing",
            "product_missing": "Product missing",
            "too_small": "Too small",
        }
        return [label for field, label in names.items() if getattr(self, field)]

    def scores(self) -> dict[str, Any]:
        """The scores and flags, as export manifests and the API carry them."""
        return {
            "state": self.state,
            "palette": self.palette_score,
            "text": self.text_score,
            "logo": self.logo_score,
            "product": self.product_score,
            "channels": self.channel_score,
            "flags": [f.lower().replace(" ", "-") for f in self.flags],
            "needs_review": self.needs_review,
        }


UNCHECKED: dict[str, Any] = {
    "state": "unchecked",
    "palette": None,
    "text": None,
    "logo": None,
    "product": None,
    "channels": None,
    "flags": [],
    "needs_review": False,
}


def scores_of(asset: Any) -> dict[str, Any]:
    """An asset's check scores as export manifests and the API carry them; state "unchecked"
    (every score null) while its check has not run yet or checks are off. Reads the reverse
    one-to-one, so callers listing many assets select_related("brand_check")."""
    try:
        check = asset.brand_check
    except AssetCheck.DoesNotExist:
        return dict(UNCHECKED)
    return check.scores()
