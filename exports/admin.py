from django.contrib import admin

from exports.models import BrandExportProfile, ExportPack


@admin.register(ExportPack)
class ExportPackAdmin(admin.ModelAdmin):
    list_display = ("title", "workspace", "state", "total", "byte_size", "created_at")
    list_filter = ("state",)
    readonly_fields = ("code", "asset_ids", "presets", "formats", "flagged", "file")


admin.site.register(BrandExportProfile)
