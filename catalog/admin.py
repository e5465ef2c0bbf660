"""Django admin for the shot list: until a shot-list page exists, operators edit shots here."""

from django.contrib import admin

from catalog.models import Shot


@admin.register(Shot)
class ShotAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "brand", "width", "height", "marketplace_main")
    list_filter = ("brand",)
    raw_id_fields = ("brand", "template", "workspace")
