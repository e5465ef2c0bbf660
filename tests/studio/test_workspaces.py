from __future__ import annotations

from studio.models import Membership, Role
from studio.tenancy import SESSION_KEY
from tests.base import StudioTestCase
from tests.factories import make_brand, make_user


class WorkspaceTests(StudioTestCase):
    def test_login_with_the_form_lands_on_the_workspace_home(self) -> None:
        r = self.client.post(
            "/login/", {"username": "alice", "password": "pw-for-tests-1"}
        )
        self.assertRedirects(r, "/", fetch_redirect_response=False)
        self.assertContains(self.client.get("/"), "Acme")

    def test_a_user_without_workspace_is_told_so(self) -> None:
        self.client.force_login(make_user("loner"))
        r = self.client.get("/")
        self.assertRedirects(r, "/workspaces/none/")

    def test_the_switcher_changes_the_current_workspace_and_scoping_follows(
        self,
    ) -> None:
        Membership.objects.create(
            workspace=self.other_workspace, user=self.alice, role=Role.VIEWER
        )
        make_brand(self.other_workspace, name="Globex Brand")
        self.client.force_login(self.alice)
        self.assertNotContains(self.client.get("/brands/"), "Globex Brand")
        self.client.post(
            "/workspaces/switch/", {"workspace": str(self.other_workspace.code)}
        )
        self.assertEqual(self.client.session[SESSION_KEY], self.other_workspace.pk)
        r = self.client.get("/brands/")
        self.assertContains(r, "Globex Brand")
        self.assertNotContains(r, "Acme Coffee")
        # Acme's objects now answer 404: only the current workspace is visible.
        self.assertEqual(
            self.client.get(f"/brands/{self.brand.code}/").status_code, 404
        )
        # In Globex alice is a viewer: roles are per workspace.
        self.assertEqual(self.client.get("/brands/new/").status_code, 403)

    def test_switching_to_a_workspace_you_are_not_in_is_404(self) -> None:
        self.client.force_login(self.carol)
        r = self.client.post(
            "/workspaces/switch/", {"workspace": str(self.workspace.code)}
        )
        self.assertEqual(r.status_code, 404)

    def test_a_stale_session_workspace_falls_back_to_a_real_membership(self) -> None:
        self.client.force_login(self.carol)
        session = self.client.session
        session[SESSION_KEY] = self.workspace.pk  # carol is not a member of Acme
        session.save()
        r = self.client.get("/brands/")
        self.assertNotContains(r, "Acme Coffee")


class MemberManagementTests(StudioTestCase):
    def test_admins_change_roles(self) -> None:
        self.client.force_login(self.alice)
        membership = Membership.objects.get(user=self.eddie, workspace=self.workspace)
        self.client.post(f"/members/{membership.pk}/", {"role": "approver"})
        membership.refresh_from_db()
        self.assertEqual(membership.role, "approver")

    def test_non_admins_cannot_manage_members(self) -> None:
        self.client.force_login(self.alex)
        bob_membership = Membership.objects.get(user=self.bob)
        self.assertEqual(
            self.client.post(
                f"/members/{bob_membership.pk}/", {"role": "admin"}
            ).status_code,
            403,
        )
        self.assertEqual(
            self.client.post(
                "/members/", {"email": "carol@example.com", "role": "admin"}
            ).status_code,
            403,
        )
        bob_membership.refresh_from_db()
        self.assertEqual(bob_membership.role, "viewer")

    def test_the_last_admin_cannot_be_demoted_or_removed(self) -> None:
        self.client.force_login(self.alice)
        mine = Membership.objects.get(user=self.alice, workspace=self.workspace)
        self.client.post(f"/members/{mine.pk}/", {"role": "viewer"})
        mine.refresh_from_db()
        self.assertEqual(mine.role, "admin")
        self.client.post(f"/members/{mine.pk}/", {"remove": "1"})
        self.assertTrue(Membership.objects.filter(pk=mine.pk).exists())

    def test_another_workspaces_membership_is_404(self) -> None:
        self.client.force_login(self.alice)
        carols = Membership.objects.get(user=self.carol)
        self.assertEqual(
            self.client.post(f"/members/{carols.pk}/", {"role": "viewer"}).status_code,
            404,
        )

    def test_everyone_sees_the_member_list(self) -> None:
        self.client.force_login(self.bob)
        r = self.client.get("/members/")
        self.assertContains(r, "eddie")
        self.assertNotContains(r, "carol")
        self.assertNotContains(r, "Invite a member")
