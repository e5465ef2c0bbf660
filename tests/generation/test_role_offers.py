"""The gallery and the asset page offer exactly what the server then allows (issue 18): both read
the one rule in studio/permissions.py, the pages through `|can`, the views through `require`."""

from __future__ import annotations

from django.urls import reverse

from generation.models import Asset
from tests.base import StudioTestCase
from tests.factories import make_asset

# What an editor may do from the gallery: star, tag, request changes (one card and in bulk), export.
GALLERY_EDITOR = (
    "star-toggle",
    'data-key="c"',
    'name="action" value="changes"',
    'name="action" value="tag"',
    'id="export-button"',
)
# ... and from the asset page: change one thing, request changes, tags, focal point, comments.
ASSET_EDITOR = (
    "Change one thing",
    'value="changes_requested"',
    'id="tag-add"',
    'class="focal"',
    "Add a comment",
)
APPROVER = ('name="action" value="approve"', 'id="share-button"')


class RoleOffersTests(StudioTestCase):
    def setUp(self) -> None:
        self.asset = make_asset(self.campaign)
        self.gallery = reverse("generation:campaign-gallery", args=[self.campaign.code])
        self.page = reverse("generation:asset-detail", args=[self.asset.code])

    def _pages(self, user: object) -> tuple[str, str]:
        self.client.force_login(user)
        gallery = self.client.get(self.gallery)
        page = self.client.get(self.page)
        self.assertEqual((gallery.status_code, page.status_code), (200, 200))
        return gallery.content.decode(), page.content.decode()

    def test_a_viewer_is_offered_none_of_the_editor_actions(self) -> None:
        gallery, page = self._pages(self.bob)
        self.assertIn(f'id="asset-{self.asset.code}"', gallery)
        for marker in GALLERY_EDITOR + APPROVER:
            self.assertNotIn(marker, gallery)
        for marker in ASSET_EDITOR:
            self.assertNotIn(marker, page)

    def test_an_editor_is_offered_the_editor_actions_but_not_the_decisions(
        self,
    ) -> None:
        gallery, page = self._pages(self.eddie)
        for marker in GALLERY_EDITOR:
            self.assertIn(marker, gallery)
        for marker in APPROVER:
            self.assertNotIn(marker, gallery)
        for marker in ASSET_EDITOR:
            self.assertIn(marker, page)

    def test_a_viewer_bulk_star_or_tag_is_refused_by_the_same_rule(self) -> None:
        self.client.force_login(self.bob)
        for action in ("star", "tag"):
            r = self.client.post(
                reverse("generation:asset-bulk"),
                {"action": action, "tag": "x", "asset": [str(self.asset.code)]},
            )
            self.assertEqual(r.status_code, 403, action)
            self.assertIn("This needs the editor role or higher.", r.content.decode())
        self.asset.refresh_from_db()
        self.assertFalse(self.asset.starred)
        self.assertFalse(Asset.objects.filter(tags__name="x").exists())
