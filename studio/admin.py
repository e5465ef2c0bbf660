from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from studio.models import Invitation, Membership, Workspace
from studio.services import MembershipRuleError, membership_change


class MembershipInline(admin.TabularInline):
    # Read-only: roles change on the Membership admin (or the Members page), which goes through
    # membership_change and so keeps every workspace's last admin.
    model = Membership
    extra = 0
    fields = readonly_fields = ("user", "role", "created_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Membership | None = None
    ) -> list[str]:
        # Moving a membership to another user or workspace would skip the last-admin rule.
        return ["user", "workspace"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: Membership, form: object, change: bool
    ) -> None:
        try:
            saved = membership_change(
                workspace=obj.workspace, user=obj.user, role=obj.role
            )
        except MembershipRuleError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk = saved.pk if saved else obj.pk

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        try:
            membership_change(workspace=obj.workspace, user=obj.user, role=None)
        except MembershipRuleError as exc:
            self.message_user(request, f"{obj}: {exc}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset.select_related("workspace", "user"):
            self.delete_model(request, obj)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "workspace",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
    ]
    list_filter = ["role", "workspace"]
    search_fields = ["email", "workspace__name"]
    readonly_fields = ["invited_by", "accepted_at", "accepted_by"]
