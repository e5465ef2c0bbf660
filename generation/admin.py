from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from generation.engine.failure import generation_cancel
from generation.models import Asset, Generation, ProviderAccount


class ProviderAccountForm(forms.ModelForm):
    # Write-only: the stored key is never sent back to the browser, not even masked in the input.
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderAccount
        fields = [
            "workspace",
            "backend",
            "label",
            "base_url",
            "region",
            "max_concurrency",
            "enabled",
        ]

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        if key := self.cleaned_data.get("api_key"):
            account.set_api_key(key)
        if commit:
            account.save()
        return account


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = [
        "__str__",
        "workspace",
        "backend",
        "masked_key",
        "region",
        "max_concurrency",
        "enabled",
    ]
    list_filter = ["backend", "enabled", "workspace"]
    search_fields = ["label", "workspace__name"]
    readonly_fields = ["masked_key", "created_at", "updated_at"]

    @admin.display(description="API key")
    def masked_key(self, obj: ProviderAccount) -> str:
        return obj.masked_key


@admin.action(description="Cancel the selected generations")
def cancel_generations(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Generation]
) -> None:
    canceled = sum(
        generation_cancel(generation_id=pk)
        for pk in queryset.values_list("pk", flat=True)
    )
    modeladmin.message_user(
        request, f"Canceled {canceled} generation(s).", messages.SUCCESS
    )


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "workspace",
        "backend",
        "model",
        "state",
        "attempts",
        "retries",
        "queued_at",
        "finished_at",
    ]
    list_filter = ["state", "backend", "model", "error_class", "workspace"]
    search_fields = ["code", "provider_task_id", "prompt"]
    date_hierarchy = "queued_at"
    actions = [cancel_generations]
    raw_id_fields = [
        "campaign",
        "brand",
        "template_version",
        "created_by",
        "provider_account",
    ]
    # State changes only through the services (the cancel action): everything is read-only here.
    readonly_fields = [f.name for f in Generation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "workspace",
        "generation",
        "width",
        "height",
        "format",
        "byte_size",
        "created_at",
    ]
    list_filter = ["format", "workspace"]
    search_fields = ["code", "sha256", "generation__code"]
    readonly_fields = [f.name for f in Asset._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
