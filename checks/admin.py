from django.contrib import admin

from checks.models import AssetCheck, BrandCheckPolicy


@admin.register(BrandCheckPolicy)
class BrandCheckPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "brand",
        "palette_min",
        "text_min",
        "logo_min",
        "product_min",
        "delta_e",
    ]
    raw_id_fields = ["brand"]


@admin.register(AssetCheck)
class AssetCheckAdmin(admin.ModelAdmin):
    list_display = [
        "asset",
        "state",
        "palette_score",
        "text_score",
        "logo_score",
        "needs_review",
    ]
    list_filter = [
        "state",
        "needs_review",
        "off_palette",
        "text_mismatch",
        "logo_missing",
    ]
    raw_id_fields = ["asset", "workspace"]
    readonly_fields = ["details"]
