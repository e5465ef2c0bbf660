"""Refusals inside the layout (issue 18): a 403 names the reason, the role that would allow it and a
way back, and is logged on one line; a 404 renders inside the layout too. Plus the one date format."""

from __future__ import annotations

import datetime as dt
import logging

from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from studio import permissions
from studio.log_filters import ForbiddenOnOneLine
from studio.models import Role
from studio.templatetags.studio_ui import relative
from tests.base import StudioTestCase


class RefusalPageTests(StudioTestCase):
    def test_a_viewer_refused_gets_the_layout_the_reason_the_role_and_a_way_back(self):
        self.client.force_login(self.bob)
        url = reverse("campaigns:brand-create")
        with self.assertLogs("django.request", level="WARNING") as logs:
            response = self.client.get(url, HTTP_REFERER="http://testserver/brands/")
        self.assertEqual(response.status_code, 403)
        page = response.content.decode()
        self.assertIn('class="topbar"', page)  # inside the layout, with the navigation
        self.assertIn("This needs the editor role or higher.", page)
        self.assertIn("<strong>editor</strong> role", page)
        self.assertIn("Your role in Acme is <strong>viewer</strong>", page)
        self.assertIn('href="http://testserver/brands/" id="refusal-back"', page)
        self.assertIn("alice", page)  # who can change the role
        self.assertEqual(len(logs.records), 1)

    def test_a_403_is_logged_as_one_line_without_a_traceback(self):
        self.client.force_login(self.bob)
        handler_records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                handler_records.append(record)

        keep = Keep()
        keep.addFilter(ForbiddenOnOneLine())
        logger = logging.getLogger("django.request")
        logger.addHandler(keep)
        try:
            self.client.get(reverse("campaigns:brand-create"))
        finally:
            logger.removeHandler(keep)
        [record] = handler_records
        line = logging.Formatter("%(message)s").format(record)
        self.assertEqual(
            line,
            "Forbidden: /brands/new/ for bob: This needs the editor role or higher.",
        )
        self.assertNotIn("\n", line)
        self.assertIsNone(record.exc_info)

    def test_a_review_refusal_names_the_approver_role(self):
        # Refusals raised with their own wording still get the role read back from it.
        from studio.errors import _role_needed

        exc = PermissionError("Only a approver or higher may approve.")
        self.assertEqual(_role_needed(exc), Role.APPROVER)

    @override_settings(DEBUG=False)
    def test_a_missing_page_renders_inside_the_layout(self):
        self.client.force_login(self.bob)
        response = self.client.get("/campaigns/00000000-0000-0000-0000-000000000000/")
        self.assertEqual(response.status_code, 404)
        self.assertIn('class="topbar"', response.content.decode())
        self.assertIn("There is nothing here", response.content.decode())


class PermissionTableTests(StudioTestCase):
    def test_can_reads_the_one_table(self):
        viewer, editor = self.bob.memberships.get(), self.eddie.memberships.get()
        self.assertFalse(permissions.can(viewer, "asset.remix"))
        self.assertTrue(permissions.can(editor, "asset.remix"))
        self.assertFalse(permissions.can(editor, "asset.approve"))
        self.assertTrue(permissions.can(self.alex.memberships.get(), "asset.approve"))
        self.assertFalse(permissions.can(None, "view"))
        with self.assertRaises(ValueError):
            permissions.can(editor, "no.such.action")

    def test_the_template_filter_is_built_in(self):
        html = Template('{% if m|can:"batch.create" %}yes{% else %}no{% endif %}')
        self.assertEqual(html.render(Context({"m": self.bob.memberships.get()})), "no")
        self.assertEqual(
            html.render(Context({"m": self.eddie.memberships.get()})), "yes"
        )


class DateFormatTests(StudioTestCase):
    def test_relative_where_recent_exact_on_hover(self):
        now = timezone.now()
        self.assertEqual(relative(now - dt.timedelta(seconds=10), now), "just now")
        self.assertEqual(relative(now - dt.timedelta(minutes=5), now), "5 min ago")
        self.assertEqual(relative(now + dt.timedelta(minutes=3), now), "in 3 min")
        self.assertEqual(
            relative(now - dt.timedelta(hours=3, minutes=5), now), "3 h ago"
        )
        self.assertIsNone(relative(now - dt.timedelta(days=9), now))
        value = dt.datetime(2026, 12, 3, 7, 11, tzinfo=dt.UTC)
        html = Template("{{ v|when }} {{ v|stamp }} {{ v|day }} {{ d|day }}").render(
            Context({"v": value, "d": dt.date(2026, 11, 26)})
        )
        self.assertIn('title="3 Dec 2026, 07:11 UTC">3 Dec 2026, 07:11</time>', html)
        self.assertIn(">3 Dec 2026</time>", html)
        self.assertIn('<time datetime="2026-11-26">26 Nov 2026</time>', html)
