from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="studio/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspaces/switch/", views.workspace_switch, name="workspace-switch"),
    path("workspaces/none/", views.no_workspace, name="no-workspace"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/", views.member_update, name="member-update"),
    path("", include("campaigns.urls")),
    path("", include("generation.urls")),
    path("admin/", admin.site.urls),
]
