"""Issue 9, item 6: failed logins lock out a username and an address, with a clear message."""

from __future__ import annotations

from django.test import RequestFactory, override_settings

from studio.login_throttle import client_address
from studio.models import Membership
from tests.base import StudioTestCase

PASSWORD = "pw-for-tests-1"


class LoginThrottleTests(StudioTestCase):
    def _login(self, username: str, password: str, addr: str = "127.0.0.1"):
        return self.client.post(
            "/login/", {"username": username, "password": password}, REMOTE_ADDR=addr
        )

    def test_thirty_wrong_passwords_then_the_right_one_is_refused(self) -> None:
        # The probe's exact sequence: 30 wrong passwords, then the right one.
        statuses = [self._login("alice", f"wrong-{i}").status_code for i in range(30)]
        self.assertEqual(statuses[:9], [200] * 9)  # the login form with its error
        self.assertEqual(set(statuses[10:]), {429})
        r = self._login("alice", PASSWORD)
        self.assertEqual(r.status_code, 429)
        self.assertContains(r, "Logging in is blocked for a while", status_code=429)
        self.assertContains(r, "Try again in 15 minutes", status_code=429)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_the_username_is_locked_from_every_address(self) -> None:
        for i in range(10):
            self._login("alice", "wrong", addr=f"10.0.1.{i}")
        r = self._login("alice", PASSWORD, addr="10.0.2.1")
        self.assertEqual(r.status_code, 429)
        # Another user from a fresh address is not affected.
        self.assertEqual(self._login("bob", PASSWORD, addr="10.0.2.2").status_code, 302)

    def test_an_address_is_locked_for_every_username(self) -> None:
        for i in range(10):
            self._login(f"guess{i}", "wrong", addr="10.0.3.1")
        self.assertEqual(
            self._login("alice", PASSWORD, addr="10.0.3.1").status_code, 429
        )
        self.assertEqual(
            self._login("alice", PASSWORD, addr="10.0.3.2").status_code, 302
        )

    def test_a_few_typos_do_not_lock_anyone_out(self) -> None:
        for _ in range(5):
            r = self._login("alice", "typo")
            self.assertContains(r, "Please enter a correct username and password")
        self.assertRedirects(
            self._login("alice", PASSWORD), "/", fetch_redirect_response=False
        )

    def test_a_workspace_admin_sees_the_lockout_and_unlocks_her_member(self) -> None:
        for _ in range(10):
            self._login("bob", "wrong", addr="10.0.4.1")
        self.assertEqual(self._login("bob", PASSWORD, addr="10.0.4.2").status_code, 429)
        self.client.force_login(self.alice)
        page = self.client.get("/members/")
        self.assertContains(page, "Locked out after failed logins")
        bobs = Membership.objects.get(user=self.bob, workspace=self.workspace)
        r = self.client.post(f"/members/{bobs.pk}/unlock/", follow=True)
        self.assertContains(r, "bob can log in again.")
        self.assertNotContains(r, "Locked out after failed logins")
        self.client.logout()
        self.assertEqual(self._login("bob", PASSWORD, addr="10.0.4.2").status_code, 302)

    def test_only_admins_unlock_and_only_their_own_members(self) -> None:
        bobs = Membership.objects.get(user=self.bob, workspace=self.workspace)
        self.client.force_login(self.eddie)
        self.assertEqual(
            self.client.post(f"/members/{bobs.pk}/unlock/").status_code, 403
        )
        self.client.force_login(self.carol)
        self.assertEqual(
            self.client.post(f"/members/{bobs.pk}/unlock/").status_code, 404
        )

    def test_the_django_admin_lists_lockouts_for_the_operator(self) -> None:
        from django.contrib.auth.models import User

        for _ in range(10):
            self._login("bob", "wrong", addr="10.0.5.1")
        User.objects.filter(pk=self.alice.pk).update(is_staff=True, is_superuser=True)
        self.client.force_login(self.alice)
        r = self.client.get("/admin/axes/accessattempt/")
        self.assertContains(r, "10.0.5.1")


class ClientAddressTests(StudioTestCase):
    def test_without_a_proxy_the_peer_address_counts(self) -> None:
        request = RequestFactory().post(
            "/login/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="1.2.3.4"
        )
        self.assertEqual(client_address(request), "10.9.9.9")

    @override_settings(LOGIN_PROXY_COUNT=1)
    def test_behind_one_proxy_the_address_it_appended_counts(self) -> None:
        # The client wrote "1.2.3.4" itself; our proxy appended what it saw, 203.0.113.7.
        request = RequestFactory().post(
            "/login/",
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",
        )
        self.assertEqual(client_address(request), "203.0.113.7")
