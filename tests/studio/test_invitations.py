"""Issue 9, item 7: invitations instead of "add any account", and one last-admin rule everywhere."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.core import mail
from django.test import override_settings

from studio.invitations import invitation_create, invitation_token
from studio.models import Invitation, Membership, Role
from studio.services import MembershipRuleError, membership_change
from tests.base import StudioTestCase
from tests.factories import make_user

LINK = re.compile(r"http://testserver(/invitations/[^/\s]+/)")


class InvitingTests(StudioTestCase):
    def _invite(self, email: str, role: str = "editor"):
        self.client.force_login(self.alice)
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                "/members/", {"email": email, "role": role}, follow=True
            )

    def test_the_old_add_by_username_request_adds_nobody_and_names_nobody(self) -> None:
        # The probe's request: "add" an account by username.
        make_user("ghost-account")
        self.client.force_login(self.alice)
        r = self.client.post(
            "/members/", {"username": "ghost-account", "role": "editor"}
        )
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, "No user called")
        self.assertContains(r, "This field is required")
        self.assertFalse(
            Membership.objects.filter(user__username="ghost-account").exists()
        )

    def test_the_answer_is_the_same_whether_or_not_an_account_exists(self) -> None:
        make_user("known")  # known@example.com
        answers = []
        for email in ["known@example.com", "nobody@example.com"]:
            r = self._invite(email)
            text = r.content.decode()
            text = text.replace(email, "EMAIL")
            text = LINK.sub("LINK", text)
            text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
            text = re.sub(r"/members/invitations/[0-9a-f-]+/", "", text)
            text = re.sub(r"[\w-]{20,}", "TOKEN", text)  # CSRF tokens, CSP nonces
            answers.append((r.status_code, text))
            # Each page is compared with one pending invitation on it.
            Invitation.objects.update(accepted_at="2000-01-01T00:00:00Z")
        self.maxDiff = None
        self.assertEqual(answers[0], answers[1])
        self.assertIn("Invitation sent to EMAIL", answers[0][1])
        self.assertEqual(
            sorted(Invitation.objects.values_list("email", flat=True)),
            ["known@example.com", "nobody@example.com"],
        )

    def test_the_invitee_gets_an_email_and_the_admin_sees_the_same_link(self) -> None:
        r = self._invite("Newbie@Example.com", role="approver")
        self.assertEqual(len(mail.outbox), 1)
        message = mail.outbox[0]
        self.assertEqual(message.to, ["newbie@example.com"])
        self.assertIn("Acme", message.subject)
        mailed = LINK.search(message.body).group(1)
        shown = LINK.search(r.content.decode()).group(1)
        self.assertEqual(mailed, shown)
        self.assertContains(r, "Pending invitations")

    @override_settings(STUDIO_PUBLIC_URL="https://studio.example.com")
    def test_the_link_uses_the_public_url_when_set(self) -> None:
        self._invite("pub@example.com")
        self.assertIn("https://studio.example.com/invitations/", mail.outbox[0].body)

    @override_settings(
        MAILERS={
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 2},
            }
        }
    )
    def test_a_mail_server_that_is_down_does_not_lose_the_invitation(self) -> None:
        with self.assertLogs("studio.invitations", "WARNING"):
            r = self._invite("offline@example.com")
        self.assertEqual(r.status_code, 200)
        self.assertIsNotNone(LINK.search(r.content.decode()))
        self.assertTrue(Invitation.objects.filter(email="offline@example.com"))

    def test_only_admins_invite(self) -> None:
        self.client.force_login(self.eddie)
        r = self.client.post("/members/", {"email": "x@example.com", "role": "admin"})
        self.assertEqual(r.status_code, 403)
        self.assertFalse(Invitation.objects.exists())


class AcceptingTests(StudioTestCase):
    def _link(self, role: str = Role.EDITOR, email: str = "new@example.com") -> str:
        invitation = invitation_create(
            workspace=self.workspace, email=email, role=role, invited_by=self.alice
        )
        return f"/invitations/{invitation_token(invitation)}/"

    def test_a_newcomer_creates_an_account_and_joins(self) -> None:
        link = self._link(Role.APPROVER)
        page = self.client.get(link)
        self.assertContains(page, "Join Acme")
        self.assertContains(page, "Create account and join")
        r = self.client.post(
            link,
            {
                "signup": "1",
                "username": "newbie",
                "password1": "a-long-new-passphrase-42",
                "password2": "a-long-new-passphrase-42",
            },
        )
        self.assertRedirects(r, "/", fetch_redirect_response=False)
        user = User.objects.get(username="newbie")
        self.assertEqual(user.email, "new@example.com")
        self.assertEqual(
            Membership.objects.get(user=user, workspace=self.workspace).role, "approver"
        )
        self.assertContains(self.client.get("/"), "Welcome to Acme")
        # The link worked once.
        self.client.logout()
        again = self.client.get(link)
        self.assertEqual(again.status_code, 404)
        self.assertContains(again, "not valid any more", status_code=404)

    def test_an_existing_account_logs_in_and_joins(self) -> None:
        link = self._link(Role.EDITOR, email="carol@example.com")
        self.assertContains(self.client.get(link), "log in to accept")
        self.client.force_login(self.carol)
        r = self.client.post(link, {"join": "1"})
        self.assertRedirects(r, "/", fetch_redirect_response=False)
        self.assertEqual(
            Membership.objects.get(user=self.carol, workspace=self.workspace).role,
            "editor",
        )
        # Carol keeps her own workspace and now sees Acme as the current one.
        self.assertTrue(
            Membership.objects.filter(user=self.carol, workspace=self.other_workspace)
        )
        self.assertContains(self.client.get("/brands/"), "Acme Coffee")

    def test_a_member_is_promoted_but_never_demoted_by_an_invitation(self) -> None:
        self.client.force_login(self.bob)
        self.client.post(self._link(Role.APPROVER), {"join": "1"})
        self.assertEqual(Membership.objects.get(user=self.bob).role, "approver")
        # The only admin accepts a viewer invitation: she stays admin.
        self.client.force_login(self.alice)
        self.client.post(self._link(Role.VIEWER), {"join": "1"})
        self.assertEqual(
            Membership.objects.get(user=self.alice, workspace=self.workspace).role,
            "admin",
        )

    def test_a_tampered_link_is_refused(self) -> None:
        link = self._link()
        forged = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]
        self.assertEqual(self.client.get(forged).status_code, 404)
        self.assertEqual(self.client.get("/invitations/not-a-token/").status_code, 404)

    def test_an_expired_link_is_refused(self) -> None:
        link = self._link()
        with override_settings(STUDIO_INVITATION_DAYS=0):
            r = self.client.get(link)
        self.assertContains(r, "not valid any more", status_code=404)
        Invitation.objects.update(expires_at="2000-01-01T00:00:00Z")
        self.assertEqual(self.client.get(link).status_code, 404)

    def test_a_withdrawn_invitation_no_longer_works(self) -> None:
        link = self._link()
        invitation = Invitation.objects.get()
        self.client.force_login(self.alice)
        r = self.client.post(
            f"/members/invitations/{invitation.code}/withdraw/", follow=True
        )
        self.assertContains(r, "Invitation to new@example.com withdrawn.")
        self.client.force_login(self.carol)
        self.assertEqual(self.client.post(link, {"join": "1"}).status_code, 404)
        self.assertFalse(
            Membership.objects.filter(user=self.carol, workspace=self.workspace)
        )


class LastAdminRuleTests(StudioTestCase):
    def test_the_add_member_request_no_longer_re_roles_the_only_admin(self) -> None:
        # The probe's request: the only admin "adds" herself as a viewer.
        self.client.force_login(self.alice)
        self.client.post("/members/", {"username": "alice", "role": "viewer"})
        self.assertEqual(
            Membership.objects.get(user=self.alice, workspace=self.workspace).role,
            "admin",
        )

    def test_the_member_update_form_keeps_the_last_admin(self) -> None:
        self.client.force_login(self.alice)
        mine = Membership.objects.get(user=self.alice, workspace=self.workspace)
        r = self.client.post(f"/members/{mine.pk}/", {"role": "viewer"}, follow=True)
        self.assertContains(r, "A workspace needs at least one admin.")
        r = self.client.post(f"/members/{mine.pk}/", {"remove": "1"}, follow=True)
        self.assertContains(r, "A workspace needs at least one admin.")
        mine.refresh_from_db()
        self.assertEqual(mine.role, "admin")

    def test_with_a_second_admin_the_first_may_step_down(self) -> None:
        membership_change(workspace=self.workspace, user=self.eddie, role=Role.ADMIN)
        membership_change(workspace=self.workspace, user=self.alice, role=Role.VIEWER)
        self.assertEqual(
            Membership.objects.get(user=self.alice, workspace=self.workspace).role,
            "viewer",
        )
        with self.assertRaises(MembershipRuleError):
            membership_change(workspace=self.workspace, user=self.eddie, role=None)

    def test_the_django_admin_keeps_the_last_admin_too(self) -> None:
        User.objects.filter(pk=self.carol.pk).update(is_staff=True, is_superuser=True)
        self.client.force_login(self.carol)
        alices = Membership.objects.get(user=self.alice, workspace=self.workspace)
        r = self.client.post(
            f"/admin/studio/membership/{alices.pk}/change/",
            {"role": "viewer"},
            follow=True,
        )
        self.assertContains(r, "A workspace needs at least one admin.")
        r = self.client.post(
            f"/admin/studio/membership/{alices.pk}/delete/",
            {"post": "yes"},
            follow=True,
        )
        self.assertContains(r, "A workspace needs at least one admin.")
        alices.refresh_from_db()
        self.assertEqual(alices.role, "admin")
        # A non-last admin's change goes through.
        bobs = Membership.objects.get(user=self.bob)
        self.client.post(
            f"/admin/studio/membership/{bobs.pk}/change/", {"role": "editor"}
        )
        bobs.refresh_from_db()
        self.assertEqual(bobs.role, "editor")
