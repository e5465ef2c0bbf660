from django.contrib import admin
from django.http import HttpRequest

from campaigns.models import (
    Brand,
    Campaign,
    PromptTemplate,
    ReferenceImage,
    Tag,
    TemplateVersion,
)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace"]
    list_filter = ["workspace"]
    search_fields = ["name"]


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    raw_id_fields = ["logo"]


@admin.register(ReferenceImage)
class ReferenceImageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "brand", "role", "width", "height", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["title", "original_name", "sha256"]
    readonly_fields = [
        "sha256",
        "width",
        "height",
        "byte_size",
        "content_type",
        "file",
        "thumbnail",
    ]
    filter_horizontal = ["tags"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "brand", "status", "starts_on", "ends_on", "budget_cap"]
    list_filter = ["status", "objective", "workspace"]
    search_fields = ["name"]


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "kind", "change_note", "author", "created_at")
    show_change_link = True

    def has_add_permission(
        self, request: HttpRequest, obj: PromptTemplate | None = None
    ) -> bool:
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "brand", "campaign", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    inlines = [TemplateVersionInline]


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are immutable history."""

    list_display = ["template", "number", "kind", "author", "created_at"]
    list_filter = ["kind"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: TemplateVersion | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: TemplateVersion | None = None
    ) -> bool:
        return False
