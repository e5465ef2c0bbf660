"""Review services: decisions with their audit trail, role rules, stars, tags, comments."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.models import Tag
from generation import review
from generation.models import Asset, Comment, ReviewEvent, ReviewStatus
from tests.base import StudioTestCase
from tests.factories import make_asset, make_brand, make_campaign

S = ReviewStatus


class AssetReviewTests(StudioTestCase):
    def setUp(self) -> None:
        self.asset = make_asset(self.campaign)

    def test_an_approver_approves_and_the_decision_is_audited(self) -> None:
        event = review.asset_review(
            asset=self.asset, actor=self.alex, to_status=S.APPROVED, comment="Winner"
        )
        assert event is not None
        self.asset.refresh_from_db()
        self.assertEqual(self.asset.review_status, S.APPROVED)
        self.assertIsNotNone(self.asset.reviewed_at)
        stored = ReviewEvent.objects.get()
        self.assertEqual(
            (stored.actor, stored.from_status, stored.to_status, stored.comment),
            (self.alex, S.PENDING, S.APPROVED, "Winner"),
        )
        self.assertEqual(stored.workspace, self.workspace)
        self.assertEqual(stored.asset_id, self.asset.pk)

    def test_repeating_a_decision_changes_and_records_nothing(self) -> None:
        review.asset_review(asset=self.asset, actor=self.alex, to_status=S.APPROVED)
        again = review.asset_review(
            asset=self.asset, actor=self.alice, to_status=S.APPROVED
        )
        self.assertIsNone(again)
        self.assertEqual(ReviewEvent.objects.count(), 1)

    def test_every_move_records_the_status_it_left(self) -> None:
        review.asset_review(
            asset=self.asset, actor=self.eddie, to_status=S.CHANGES_REQUESTED
        )
        review.asset_review(asset=self.asset, actor=self.alex, to_status=S.REJECTED)
        review.asset_review(asset=self.asset, actor=self.alice, to_status=S.APPROVED)
        trail = list(
            ReviewEvent.objects.order_by("created_at", "pk").values_list(
                "from_status", "to_status", "actor__username"
            )
        )
        self.assertEqual(
            trail,
            [
                (S.PENDING, S.CHANGES_REQUESTED, "eddie"),
                (S.CHANGES_REQUESTED, S.REJECTED, "alex"),
                (S.REJECTED, S.APPROVED, "alice"),
            ],
        )

    def test_a_stale_instance_still_records_the_true_previous_status(self) -> None:
        stale = Asset.objects.get(pk=self.asset.pk)
        review.asset_review(asset=self.asset, actor=self.alex, to_status=S.REJECTED)
        review.asset_review(asset=stale, actor=self.alice, to_status=S.APPROVED)
        last = ReviewEvent.objects.order_by("-pk").first()
        assert last is not None
        self.assertEqual((last.from_status, last.to_status), (S.REJECTED, S.APPROVED))

    def test_viewers_cannot_decide_or_request_changes(self) -> None:
        for status in S.values:
            with self.subTest(status=status), self.assertRaises(PermissionDenied):
                review.asset_review(asset=self.asset, actor=self.bob, to_status=status)
        self.assertFalse(ReviewEvent.objects.exists())

    def test_editors_request_changes_but_do_not_approve_reject_or_reopen(self) -> None:
        for status in (S.APPROVED, S.REJECTED, S.PENDING):
            with self.subTest(status=status), self.assertRaises(PermissionDenied):
                review.asset_review(
                    asset=self.asset, actor=self.eddie, to_status=status
                )
        review.asset_review(
            asset=self.asset, actor=self.eddie, to_status=S.CHANGES_REQUESTED
        )
        self.asset.refresh_from_db()
        self.assertEqual(self.asset.review_status, S.CHANGES_REQUESTED)

    def test_approvers_and_admins_reopen_a_decision(self) -> None:
        review.asset_review(asset=self.asset, actor=self.alex, to_status=S.APPROVED)
        review.asset_review(asset=self.asset, actor=self.alice, to_status=S.PENDING)
        self.asset.refresh_from_db()
        self.assertEqual(self.asset.review_status, S.PENDING)

    def test_an_outsider_cannot_touch_the_asset(self) -> None:
        with self.assertRaises(PermissionDenied):
            review.asset_review(
                asset=self.asset, actor=self.carol, to_status=S.APPROVED
            )

    def test_an_unknown_status_is_refused(self) -> None:
        with self.assertRaises(ValidationError):
            review.asset_review(asset=self.asset, actor=self.alice, to_status="great")

    def test_an_overlong_comment_is_refused(self) -> None:
        with self.assertRaises(ValidationError):
            review.asset_review(
                asset=self.asset,
                actor=self.alice,
                to_status=S.APPROVED,
                comment="x" * (review.MAX_COMMENT_CHARS + 1),
            )
        self.assertFalse(ReviewEvent.objects.exists())


class BulkReviewTests(StudioTestCase):
    def test_a_selection_moves_together_with_one_event_per_moved_asset(self) -> None:
        assets = [make_asset(self.campaign) for _ in range(3)]
        review.asset_review(asset=assets[0], actor=self.alex, to_status=S.APPROVED)
        events = review.assets_review(
            workspace_id=self.workspace.pk,
            asset_ids=[a.pk for a in assets],
            actor=self.alex,
            to_status=S.APPROVED,
            comment="Batch one looks right",
        )
        self.assertEqual(sorted(e.asset_id for e in events), [a.pk for a in assets[1:]])
        self.assertEqual(Asset.objects.filter(review_status=S.APPROVED).count(), 3)
        self.assertEqual(ReviewEvent.objects.count(), 3)  # 1 single + 2 bulk

    def test_another_workspaces_assets_in_a_selection_are_left_alone(self) -> None:
        mine = make_asset(self.campaign)
        other_campaign = make_campaign(make_brand(self.other_workspace))
        theirs = make_asset(other_campaign)
        events = review.assets_review(
            workspace_id=self.workspace.pk,
            asset_ids=[mine.pk, theirs.pk],
            actor=self.alice,
            to_status=S.REJECTED,
        )
        self.assertEqual([e.asset_id for e in events], [mine.pk])
        theirs.refresh_from_db()
        self.assertEqual(theirs.review_status, S.PENDING)

    def test_a_viewer_cannot_decide_on_a_selection(self) -> None:
        asset = make_asset(self.campaign)
        with self.assertRaises(PermissionDenied):
            review.assets_review(
                workspace_id=self.workspace.pk,
                asset_ids=[asset.pk],
                actor=self.bob,
                to_status=S.APPROVED,
            )

    def test_too_large_a_selection_is_refused(self) -> None:
        with self.assertRaises(ValidationError):
            review.assets_review(
                workspace_id=self.workspace.pk,
                asset_ids=list(range(review.MAX_SELECTION + 1)),
                actor=self.alice,
                to_status=S.APPROVED,
            )

    def test_stars_and_tags_on_a_selection(self) -> None:
        assets = [make_asset(self.campaign) for _ in range(2)]
        ids = [a.pk for a in assets]
        review.assets_star(
            workspace_id=self.workspace.pk,
            asset_ids=ids,
            actor=self.eddie,
            starred=True,
        )
        self.assertEqual(Asset.objects.filter(starred=True).count(), 2)
        added = review.assets_tag(
            workspace_id=self.workspace.pk,
            asset_ids=ids,
            actor=self.eddie,
            add=["  Hero  Shot", "hero shot", "winner"],
        )
        self.assertEqual(added, ["hero shot", "winner"])
        for asset in assets:
            self.assertEqual(
                sorted(asset.tags.values_list("name", flat=True)),
                ["hero shot", "winner"],
            )
        self.assertEqual(Tag.objects.filter(workspace=self.workspace).count(), 2)
        review.assets_tag(
            workspace_id=self.workspace.pk,
            asset_ids=ids[:1],
            actor=self.eddie,
            remove=["Winner"],
        )
        self.assertEqual(
            list(assets[0].tags.values_list("name", flat=True)), ["hero shot"]
        )
        self.assertEqual(assets[1].tags.count(), 2)

    def test_viewers_neither_star_nor_tag(self) -> None:
        asset = make_asset(self.campaign)
        with self.assertRaises(PermissionDenied):
            review.asset_star(asset=asset, actor=self.bob, starred=True)
        with self.assertRaises(PermissionDenied):
            review.asset_tag(asset=asset, actor=self.bob, add=["x"])


class CommentTests(StudioTestCase):
    def test_editors_comment_and_the_timeline_mixes_comments_and_decisions(
        self,
    ) -> None:
        asset = make_asset(self.campaign)
        review.comment_add(asset=asset, author=self.eddie, body="  Logo too small  ")
        review.asset_review(
            asset=asset, actor=self.alex, to_status=S.APPROVED, comment="Fine anyway"
        )
        review.comment_add(asset=asset, author=self.alice, body="Agreed")
        timeline = review.review_timeline(asset=asset)
        self.assertEqual(
            [type(item).__name__ for item in timeline],
            ["Comment", "ReviewEvent", "Comment"],
        )
        first = timeline[0]
        assert isinstance(first, Comment)
        self.assertEqual((first.body, first.author), ("Logo too small", self.eddie))

    def test_viewers_cannot_comment_and_empty_comments_are_refused(self) -> None:
        asset = make_asset(self.campaign)
        with self.assertRaises(PermissionDenied):
            review.comment_add(asset=asset, author=self.bob, body="Nice")
        with self.assertRaises(ValidationError):
            review.comment_add(asset=asset, author=self.eddie, body="   ")
        self.assertFalse(Comment.objects.exists())


class FocalPointTests(StudioTestCase):
    def test_a_focal_point_is_two_fractions_inside_the_image(self) -> None:
        asset = make_asset(self.campaign)
        review.asset_focal_point(asset=asset, actor=self.eddie, x=0.25, y=0.75)
        asset.refresh_from_db()
        self.assertEqual((asset.focal_x, asset.focal_y), (0.25, 0.75))
        for x, y in ((1.5, 0.5), (0.5, None)):
            with self.subTest(x=x, y=y), self.assertRaises(ValidationError):
                review.asset_focal_point(asset=asset, actor=self.eddie, x=x, y=y)
        review.asset_focal_point(asset=asset, actor=self.eddie, x=None, y=None)
        asset.refresh_from_db()
        self.assertIsNone(asset.focal_x)
