from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.main import api
from campaigns.views.home import home
from studio import errors, invitation_views, views

# Refusals inside the layout, with the reason and a way back (studio/errors.py).
handler403 = errors.forbidden
handler404 = errors.not_found

urlpatterns = [
    path("", home, name="home"),
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
    path(
        "members/<int:membership_id>/unlock/",
        views.member_unlock,
        name="member-unlock",
    ),
    path(
        "members/invitations/<uuid:code>/withdraw/",
        views.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path(
        "invitations/<str:token>/",
        invitation_views.invitation_accept_view,
        name="invitation-accept",
    ),
    path("", include("campaigns.urls")),
    path("", include("generation.urls")),
    path("", include("exports.urls")),
    path("api/v1/", api.urls),
    path("", include("api.urls")),
    path("", include("results.urls")),
    path("", include("catalog.urls")),
    path("admin/", admin.site.urls),
]
