"""Outside review links: who may share, what a link grants (exactly its assets), expiry and
revocation, the name asked once (signed cookie), decisions in the audit trail marked external,
CSRF on the public forms and the rate limit."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from exports import services, sharing
from exports.models import ShareFeedback, ShareLink
from generation.models import Comment, ReviewEvent
from generation.review import review_timeline
from tests.base import StudioTestCase
from tests.exports.helpers import approved_asset


class ShareLinkTests(StudioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.approved = approved_asset(cls.campaign, size=(320, 400))
        cls.pending = approved_asset(
            cls.campaign, size=(320, 400), review_status="pending"
        )
        cls.outside = approved_asset(cls.campaign, size=(320, 400))  # never shared

    def setUp(self) -> None:
        cache.clear()

    def _share_selection(self, *assets) -> str:
        self.client.force_login(self.alex)
        response = self.client.post(
            reverse("exports:share-create"), {"asset": [a.code for a in assets]}
        )
        self.assertEqual(response.status_code, 302)
        page = self.client.get(response["Location"]).content.decode()
        url = re.search(r'id="share-url" value="([^"]+)"', page).group(1)
        self.client.logout()
        return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])

    def _as_reviewer(self, path: str, name: str = "Jane Client (Acme Ads)") -> Client:
        client = Client()
        page = client.get(path)
        self.assertContains(page, "tell us your name")
        self.assertEqual(page["X-Robots-Tag"], "noindex, nofollow")
        answer = client.post(f"{path}name", {"name": name})
        self.assertEqual(answer.status_code, 302)
        return client

    def test_only_approvers_share_and_the_link_is_shown_once(self) -> None:
        self.client.force_login(self.eddie)  # an editor
        response = self.client.post(
            reverse("exports:share-create"), {"asset": [self.approved.code]}
        )
        self.assertEqual(response.status_code, 403)
        path = self._share_selection(self.approved)
        link = ShareLink.objects.get()
        token = path.strip("/").split("/")[-1]
        self.assertGreaterEqual(len(token), 40)
        self.assertNotIn(token, link.token_hash)  # only the hash is stored
        self.assertEqual(sharing.share_link_resolve(token), link)
        self.client.force_login(self.alex)
        again = self.client.get(reverse("exports:share-list")).content.decode()
        self.assertNotIn(token, again)

    def test_the_reviewer_sees_exactly_the_shared_images_and_the_manifest(self) -> None:
        path = self._share_selection(self.approved, self.pending)
        reviewer = self._as_reviewer(path)
        page = reviewer.get(path)
        self.assertContains(page, "Jane Client (Acme Ads)")
        for asset in (self.approved, self.pending):
            image = reviewer.get(f"{path}{asset.code}/image")
            self.assertEqual(image.status_code, 200)
            self.assertNotContains(page, str(self.outside.code))
        # Same workspace, same campaign, but not shared: 404.
        self.assertEqual(
            reviewer.get(f"{path}{self.outside.code}/image").status_code, 404
        )
        self.assertEqual(
            reviewer.post(
                f"{path}{self.outside.code}/decide", {"kind": "approve"}
            ).status_code,
            404,
        )
        manifest = reviewer.get(f"{path}manifest.json").json()
        self.assertEqual(
            {a["asset_id"] for a in manifest["assets"]},
            {str(self.approved.code), str(self.pending.code)},
        )
        self.assertEqual(manifest["digital_source_type"], "trainedAlgorithmicMedia")
        # A wrong token is a plain 404 (nothing says whether it ever existed).
        self.assertEqual(Client().get("/share/" + "x" * 43 + "/").status_code, 404)

    def test_the_share_pages_query_count_does_not_grow_with_the_images(self) -> None:
        # Each record carries the asset's brand check (checks.models.scores_of): read with the
        # assets in one query (exports.manifest.described_assets), not one query per image.
        more = [approved_asset(self.campaign, size=(64, 64)) for _ in range(3)]
        counts = []
        for assets in ([self.approved], [self.approved, *more]):
            path = self._share_selection(*assets)
            reviewer = self._as_reviewer(path)
            for page in (path, f"{path}manifest.json"):
                with CaptureQueriesContext(connection) as queries:
                    self.assertEqual(reviewer.get(page).status_code, 200)
                counts.append(len(queries))
        self.assertEqual(counts[:2], counts[2:], counts)

    def test_decisions_enter_the_audit_trail_marked_external(self) -> None:
        path = self._share_selection(self.approved, self.pending)
        reviewer = self._as_reviewer(path)
        reviewer.post(
            f"{path}{self.pending.code}/decide",
            {"kind": "approve", "comment": "Love it"},
        )
        self.pending.refresh_from_db()
        self.assertEqual(self.pending.review_status, "approved")
        event = ReviewEvent.objects.get(asset=self.pending)
        self.assertEqual(event.actor, self.alex)  # the sharer vouches
        self.assertTrue(
            event.comment.startswith("[external] Jane Client (Acme Ads) via share link")
        )
        self.assertTrue(event.comment.endswith(": Love it"))
        # Approving an already approved image changes nothing but is still on the record.
        reviewer.post(f"{path}{self.approved.code}/decide", {"kind": "approve"})
        note = Comment.objects.get(asset=self.approved)
        self.assertIn("[external] Jane Client (Acme Ads)", note.body)
        self.assertIn(note, review_timeline(asset=self.approved))
        reviewer.post(
            f"{path}{self.approved.code}/decide",
            {"kind": "changes", "comment": "Logo smaller"},
        )
        self.approved.refresh_from_db()
        self.assertEqual(self.approved.review_status, "changes_requested")
        kinds = list(ShareFeedback.objects.values_list("kind", "reviewer"))
        self.assertEqual(
            kinds,
            [("approve", "Jane Client (Acme Ads)")] * 2
            + [("changes", "Jane Client (Acme Ads)")],
        )
        self.assertTrue(
            all(f.review_event or f.review_comment for f in ShareFeedback.objects.all())
        )
        # The name is a signed cookie of this link: a forged one is not believed.
        forged = Client()
        forged.cookies["share_reviewer"] = "Mallory"
        self.assertContains(forged.get(path), "tell us your name")
        self.assertEqual(
            forged.post(
                f"{path}{self.approved.code}/decide",
                {"kind": "comment", "comment": "x"},
            ).status_code,
            302,
        )
        self.assertEqual(ShareFeedback.objects.count(), 3)

    def test_revoked_and_expired_links_stop_working(self) -> None:
        path = self._share_selection(self.approved)
        reviewer = self._as_reviewer(path)
        link = ShareLink.objects.get()
        self.client.force_login(self.carol)  # another workspace
        self.assertEqual(
            self.client.post(
                reverse("exports:share-revoke", args=[link.code])
            ).status_code,
            404,
        )
        self.client.force_login(self.alex)
        self.client.post(reverse("exports:share-revoke", args=[link.code]))
        self.assertEqual(reviewer.get(path).status_code, 404)
        self.assertEqual(
            reviewer.get(f"{path}{self.approved.code}/image").status_code, 404
        )
        path = self._share_selection(self.approved)
        ShareLink.objects.filter(revoked_at__isnull=True).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        self.assertEqual(Client().get(path).status_code, 404)

    def test_a_pack_is_shared_from_its_page(self) -> None:
        pack = services.export_pack_request(
            workspace=self.workspace,
            campaign=self.campaign,
            preset_names=["square"],
            dispatch=False,
        )
        self.client.force_login(self.alex)
        self.assertContains(
            self.client.get(reverse("exports:pack-detail", args=[pack.code])),
            "share-pack",
        )
        self.client.post(
            reverse("exports:share-create"), {"pack": pack.code, "days": 3}
        )
        link = ShareLink.objects.get()
        self.assertEqual(link.pack, pack)
        self.assertEqual(sorted(link.asset_ids), sorted(pack.asset_ids))
        self.assertAlmostEqual(
            (link.expires_at - link.created_at).total_seconds(), 3 * 86400, delta=5
        )

    def test_public_forms_need_the_csrf_token(self) -> None:
        path = self._share_selection(self.approved)
        client = Client(enforce_csrf_checks=True)
        page = client.get(path).content.decode()
        self.assertEqual(client.post(f"{path}name", {"name": "Jane"}).status_code, 403)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        ok = client.post(f"{path}name", {"name": "Jane", "csrfmiddlewaretoken": token})
        self.assertEqual(ok.status_code, 302)
        self.assertEqual(
            client.post(
                f"{path}{self.approved.code}/decide",
                {"kind": "comment", "comment": "hi"},
            ).status_code,
            403,
        )

    @override_settings(SHARE_RATE_LIMIT=5)
    def test_public_pages_are_rate_limited(self) -> None:
        path = self._share_selection(self.approved)
        client = Client()
        codes = [client.get(path).status_code for _ in range(7)]
        self.assertEqual(codes[:5], [200] * 5)
        self.assertEqual(codes[5:], [429, 429])
        # Guessing tokens counts as well.
        self.assertEqual(client.get("/share/" + "y" * 43 + "/").status_code, 429)
