"""Issue 18: the studio walked in a real browser as each of the four roles.

For each role (demo admin, dana editor, alex approver, vera viewer) the walk follows every link
the pages offer, from the home page, and asserts:
- no link offered answers 403, and no page is a bare error page (a refusal renders in the layout);
- no POST action is offered that the server then refuses: for the viewer, editor and approver
  every offered form and htmx action is sent with an empty body and must not answer 403 (a
  destructive one is not sent; a viewer must not be offered any);
- no page scrolls sideways at 390 px, and no page logs a console error;
- no table heading breaks inside a word at either width ("CAMPAIG N"): a column too narrow for its
  headings makes its table scroll inside its own box instead;
- every page is screenshotted at 1440 px and 390 px into the artefacts (roles-walk/<role>/).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from tests.e2e.layout_checks import broken_headings
from tests.factories import image_bytes, make_asset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROLES = [
    ("vera", "viewer"),
    ("alex", "approver"),
    ("dana", "editor"),
    ("demo", "admin"),
]
WIDE, PHONE = 1440, 390
MAX_PAGES = 45
# Never followed: leaving, the Django admin, files, the JSON API and its docs.
SKIP = re.compile(
    r"^/(logout|admin|media|files|private|api/v1|static)|/download|\.(zip|csv|json|png|webp|jpe?g)$"
)
# Everyone may do these.
VIEWER_POSTS = re.compile(r"^/(logout|workspaces/switch)/")
# Offered actions that are only listed, never sent (they would change the walk's data).
DESTRUCTIVE = re.compile(
    r"delete|remove|revoke|withdraw|cancel|unlock|retire|archive|logout|switch|reset"
)


def pattern(path: str) -> str:
    """One page per shape: ids, codes and numbers collapse so the walk covers kinds of page."""
    path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<code>", path)
    return re.sub(r"/\d+(?=/|$)", "/<n>", path)


def seed() -> None:
    from campaigns.models import Campaign
    from generation.models import Batch

    call_command("load_demo", verbosity=0)
    campaign = Campaign.objects.get(name="Autumn Blend Launch")
    batch = Batch.objects.create(
        workspace=campaign.workspace, campaign=campaign, brand=campaign.brand
    )
    for n, status in enumerate(["pending", "approved", "pending", "rejected"]):
        make_asset(
            campaign,
            batch=batch,
            image=image_bytes(size=(96, 96), color=(60 * n, 120, 90)),
            review_status=status,
        )


def offered_posts(page: Any) -> list[str]:
    return page.evaluate(
        """() => {
        const out = [];
        for (const f of document.querySelectorAll('form')) {
            if ((f.getAttribute('method') || 'get').toLowerCase() === 'post')
                out.push(new URL(f.getAttribute('action') || location.href, location.href).pathname);
        }
        for (const b of document.querySelectorAll('button[formaction]'))
            out.push(new URL(b.getAttribute('formaction'), location.href).pathname);
        for (const e of document.querySelectorAll('[hx-post],[hx-delete],[hx-put]')) {
            const u = e.getAttribute('hx-post') || e.getAttribute('hx-delete') || e.getAttribute('hx-put');
            out.push(new URL(u, location.href).pathname);
        }
        return out;
    }"""
    )


def links(page: Any, origin: str) -> list[str]:
    hrefs = page.evaluate(
        "() => [...document.querySelectorAll('a[href]')].filter(a => !a.hasAttribute('download')).map(a => a.href)"
    )
    out = []
    for href in hrefs:
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" != origin or SKIP.search(parts.path):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


@pytest.mark.parametrize(("username", "role"), ROLES)
def test_each_role_walks_the_studio_without_refusals_or_sideways_scroll(
    live_server: Any, page: Any, artifacts_dir: Path, username: str, role: str
) -> None:
    seed()
    folder = artifacts_dir / "roles-walk" / role
    folder.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url}: {m.text}") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    origin = live_server.url
    page.set_viewport_size({"width": WIDE, "height": 900})
    page.goto(f"{origin}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "studio-demo")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{origin}/")
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")

    queue, seen_patterns, checked_links = ["/"], set(), set()
    refused_links, bare, sideways, refused_posts, offered = [], [], [], [], set()
    broken: list[str] = []
    visited = 0
    while queue and visited < MAX_PAGES:
        path = queue.pop(0)
        shape = pattern(path.split("?")[0]) + ("?" if "?" in path else "")
        if shape in seen_patterns:
            continue
        seen_patterns.add(shape)
        response = page.goto(origin + path)
        visited += 1
        status = response.status if response else 0
        if status == 403:
            refused_links.append(path)
        if page.locator("header.topbar").count() == 0:
            bare.append(f"{path} ({status})")
        name = re.sub(r"[^a-z0-9]+", "-", shape.lower()).strip("-") or "home"
        page.set_viewport_size({"width": WIDE, "height": 900})
        page.screenshot(
            path=str(folder / f"{visited:02d}-{name}-1440.png"), full_page=True
        )
        if words := broken_headings(page):
            broken.append(f"{path} at {WIDE} px: {words}")
        page.set_viewport_size({"width": PHONE, "height": 844})
        page.wait_for_timeout(50)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 1:
            sideways.append(f"{path} (+{overflow} px)")
        if words := broken_headings(page):
            broken.append(f"{path} at {PHONE} px: {words}")
        page.screenshot(
            path=str(folder / f"{visited:02d}-{name}-390.png"), full_page=True
        )
        page.set_viewport_size({"width": WIDE, "height": 900})
        for action in offered_posts(page):
            offered.add(action)
        for link in links(page, origin):
            if link in checked_links:
                continue
            checked_links.add(link)
            # Every link offered, also those of pages of a shape already walked.
            answer = page.request.get(origin + link, max_redirects=0)
            if answer.status == 403:
                refused_links.append(f"{link} (linked from {path})")
            # Pages only: an htmx fragment (no doctype) is part of a page already walked.
            if (
                answer.ok
                and "text/html" in answer.headers.get("content-type", "")
                and answer.text()[:15].lower().startswith("<!doctype")
            ):
                queue.append(link)

    for action in sorted(offered):
        if role == "admin" or VIEWER_POSTS.match(action):
            continue
        if DESTRUCTIVE.search(action):
            if role == "viewer":
                refused_posts.append(f"{action} offered to a viewer")
        else:
            answer = page.request.post(
                origin + action, headers={"X-CSRFToken": csrf}, max_redirects=0
            )
            if answer.status == 403:
                refused_posts.append(f"{action} answered 403")

    assert visited >= 8, seen_patterns
    assert not refused_links, refused_links
    assert not bare, bare
    assert not refused_posts, refused_posts
    assert not sideways, sideways
    assert not broken, broken
    assert not problems, problems
