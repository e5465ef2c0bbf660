"""Reviewing a batch in a real browser with the keyboard alone, then checking the audit trail and
that a viewer cannot approve (the server refuses, not only a hidden button).

Screenshots go to var/test-artifacts/review/. No page may log a CSP violation or a script error.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from generation.models import Asset, Batch, ReviewEvent, ReviewStatus
from studio.models import Role
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_template,
    make_workspace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

S = ReviewStatus
HEADLINES = ["Half price", "Two for one", "Free shipping"]
BACKGROUNDS = [(236, 224, 206), (206, 226, 236)]


def _ad(headline: str, background: tuple[int, int, int], seed: int) -> bytes:
    """A small, recognisable 'ad': background, a product block, a headline bar."""
    image = Image.new("RGB", (640, 800), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 640, 120), fill=(30, 30, 46))
    draw.text((24, 44), headline, fill=(255, 255, 255))
    draw.rounded_rectangle(
        (180 + seed % 40, 240, 460, 680), radius=28, fill=(120, 70, 40)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Shots:
    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(
            path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True
        )


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")


def _focused_card(page: Any) -> str:
    return page.evaluate(
        "(document.activeElement.closest('.asset-card') || {id: ''}).id"
    )


def test_a_batch_is_reviewed_with_the_keyboard_alone(
    live_server: Any,
    page: Any,
    browser: Any,
    artifacts_dir: Path,
    settings: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = str(tmp_path)
    workspace = make_workspace("Northwind")
    make_member(workspace, Role.APPROVER, "ann")
    make_member(workspace, Role.VIEWER, "vic")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Autumn Blend Launch")
    template = make_template(
        brand, body='Coffee bag on a table, headline "{headline}"', campaign=campaign
    )
    version = template.versions.get()
    batch = Batch.objects.create(
        workspace=workspace,
        campaign=campaign,
        brand=brand,
        template_version=version,
        name="Headline test",
    )
    # A batch's worth: 3 headlines × 2 backgrounds, written as ingest would (real files).
    assets: list[Asset] = []
    for i, (headline, bg) in enumerate((h, b) for h in HEADLINES for b in BACKGROUNDS):
        assets.append(
            make_asset(
                campaign,
                image=_ad(headline, bg, i),
                batch=batch,
                template_version=version,
                prompt=f'Coffee bag on a table, headline "{headline}"',
                variables={"headline": headline},
                seed=1000 + i % 2,
                model="flux-2-pro" if i % 2 == 0 else "flux-2-flex",
            )
        )
    # The gallery shows the newest first.
    order = list(reversed(assets))

    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_viewport_size({"width": 1280, "height": 900})
    shots = Shots(page, artifacts_dir / "review")
    base = live_server.url

    _login(page, base, "ann")
    page.goto(f"{base}/batches/{batch.code}/gallery/")
    cards = page.locator(".asset-card")
    expect(cards).to_have_count(6)
    # A function, not an expression: Playwright evals bare expressions, which the CSP forbids.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.asset-thumb img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shots.take("gallery")

    # j focuses the first card; the focus ring shows where we are.
    page.keyboard.press("j")
    assert _focused_card(page) == f"asset-{order[0].code}"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    shots.take("focused")

    # a approves and moves on; r rejects and moves on.
    page.keyboard.press("a")
    expect(page.locator(f"#asset-{order[0].code}")).to_have_class(
        re.compile("review-approved")
    )
    expect(page.locator("#review-live")).to_have_text("Approved.")
    # The status chips refresh themselves (HX-Trigger: review-changed).
    expect(page.locator("#status-chips")).to_contain_text("Approved 1")
    expect(page.locator(f"#asset-{order[1].code}")).to_be_focused()
    page.keyboard.press("r")
    expect(page.locator(f"#asset-{order[1].code}")).to_have_class(
        re.compile("review-rejected")
    )
    expect(page.locator(f"#asset-{order[2].code}")).to_be_focused()

    # s stars and stays; k goes back, j forward again.
    page.keyboard.press("s")
    expect(page.locator(f"#asset-{order[2].code}")).to_have_class(
        re.compile("is-starred")
    )
    expect(page.locator(f"#asset-{order[2].code}")).to_be_focused()
    page.keyboard.press("k")
    assert _focused_card(page) == f"asset-{order[1].code}"
    page.keyboard.press("j")

    # c asks what should change; Enter sends it.
    page.keyboard.press("c")
    field = page.locator(f"#changes-{order[2].code}")
    expect(field).to_be_focused()
    page.keyboard.type("Headline larger, please")
    shots.take("request-changes")
    page.keyboard.press("Enter")
    expect(page.locator(f"#asset-{order[2].code}")).to_have_class(
        re.compile("review-changes_requested")
    )
    expect(page.locator(f"#asset-{order[3].code}")).to_be_focused()
    shots.take("after-decisions")

    statuses = dict(Asset.objects.values_list("pk", "review_status"))
    assert statuses[order[0].pk] == S.APPROVED
    assert statuses[order[1].pk] == S.REJECTED
    assert statuses[order[2].pk] == S.CHANGES_REQUESTED
    assert Asset.objects.get(pk=order[2].pk).starred
    assert statuses[order[3].pk] == S.PENDING

    # ? shows the shortcuts; Esc closes them.
    page.keyboard.press("?")
    expect(page.locator("#review-help")).to_be_visible()
    shots.take("help")
    page.keyboard.press("Escape")
    expect(page.locator("#review-help")).to_be_hidden()

    # x selects two images, m compares them side by side.
    assert _focused_card(page) == f"asset-{order[3].code}"
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.locator("#selection-count")).to_have_text("2 selected")
    shots.take("selected")
    page.keyboard.press("m")
    page.wait_for_url(re.compile(r"/assets/compare/\?asset="))
    expect(page.locator(".compare-image")).to_have_count(2)
    expect(page.locator(".word-diff ins").first).to_be_visible()
    expect(page.locator(".compare-table mark.differs").first).to_be_visible()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.compare-image img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shots.take("compare")

    # Back in the gallery, Enter opens the approved image: its audit trail names the approver.
    page.go_back()
    expect(cards).to_have_count(6)
    page.keyboard.press("j")
    assert _focused_card(page) == f"asset-{order[0].code}"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/assets/{order[0].code}/")
    trail = page.locator("#asset-timeline .timeline li.event")
    expect(trail).to_have_count(1)
    expect(trail.first).to_contain_text("ann")
    expect(trail.first).to_contain_text("Pending → Approved")
    expect(page.locator("#request")).to_contain_text(
        order[0].generation.variables["headline"]
    )
    page.wait_for_function(
        "() => document.querySelector('.viewer-stage img').complete"
        " && document.querySelector('.viewer-stage img').naturalWidth > 0"
    )
    shots.take("asset-page")
    # Zoom without a mouse: Tab to the zoom radios, arrow to 200%.
    page.focus("#zoom-fit")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#zoom-200")).to_be_checked()
    shots.take("asset-zoom-200")
    events = list(
        ReviewEvent.objects.order_by("pk").values_list(
            "actor__username", "from_status", "to_status", "comment"
        )
    )
    assert events == [
        ("ann", S.PENDING, S.APPROVED, ""),
        ("ann", S.PENDING, S.REJECTED, ""),
        ("ann", S.PENDING, S.CHANGES_REQUESTED, "Headline larger, please"),
    ]
    assert problems == [], problems

    # A viewer: no buttons, the key does nothing but explain, and a crafted POST gets 403.
    viewer = browser.new_context(viewport={"width": 1280, "height": 900})
    vpage = viewer.new_page()
    vproblems: list[str] = []
    vpage.on("pageerror", lambda e: vproblems.append(str(e)))
    _login(vpage, base, "vic")
    vpage.goto(f"{base}/batches/{batch.code}/gallery/")
    target = order[3]
    expect(vpage.locator(f"#asset-{target.code}")).to_be_visible()
    expect(vpage.locator("[data-key=a]")).to_have_count(0)
    vpage.keyboard.press("j")
    vpage.keyboard.press("j")
    vpage.keyboard.press("j")
    vpage.keyboard.press("j")
    vpage.keyboard.press("a")
    expect(vpage.locator("#review-live")).to_contain_text("Only approvers and admins")
    shots_viewer = Shots(vpage, artifacts_dir / "review")
    shots_viewer.n = shots.n
    shots_viewer.take("viewer-cannot-approve")
    status = vpage.evaluate(
        """async (url) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken'];
            const r = await fetch(url, {
                method: 'POST',
                headers: {'x-csrftoken': token, 'HX-Request': 'true'},
                body: new URLSearchParams({status: 'approved'}),
            });
            return r.status;
        }""",
        f"{base}/assets/{target.code}/review/",
    )
    assert status == 403
    bulk = vpage.evaluate(
        """async ([url, code]) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken'];
            const r = await fetch(url, {
                method: 'POST',
                headers: {'x-csrftoken': token, 'HX-Request': 'true'},
                body: new URLSearchParams({action: 'approve', asset: code}),
            });
            return r.status;
        }""",
        [f"{base}/assets/bulk/", str(target.code)],
    )
    assert bulk == 403
    target.refresh_from_db()
    assert target.review_status == S.PENDING
    assert ReviewEvent.objects.count() == 3
    assert vproblems == [], vproblems
    viewer.close()


def test_bulk_actions_and_infinite_scroll(
    live_server: Any, page: Any, artifacts_dir: Path, settings: Any, tmp_path: Path
) -> None:
    """Bulk approve by selection (checkboxes outside the form), and the scroll sentinel."""
    from playwright.sync_api import expect

    from generation.gallery import queries as gallery

    settings.MEDIA_ROOT = str(tmp_path)
    workspace = make_workspace("Contoso")
    make_member(workspace, Role.ADMIN, "ada")
    campaign = make_campaign(make_brand(workspace, name="Contoso"), name="Winter")
    n = gallery.PAGE_SIZE + 5
    assets = [make_asset(campaign) for _ in range(n)]
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_viewport_size({"width": 1280, "height": 900})
    _login(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/campaigns/{campaign.code}/gallery/")
    cards = page.locator(".asset-card")
    expect(cards).to_have_count(gallery.PAGE_SIZE)
    page.locator("#gallery-more").scroll_into_view_if_needed()
    expect(cards).to_have_count(n)
    expect(page.locator("#gallery-more")).to_have_count(0)

    newest = list(reversed(assets))
    for asset in newest[:3]:
        page.check(f"#asset-{asset.code} .asset-check")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.fill("#bulk-comment", "Strong set")
    page.click("#bulk-form button[value=approve]")
    expect(page.locator("#review-live")).to_have_text("Approved: 3 of 3 images.")
    for asset in newest[:3]:
        expect(page.locator(f"#asset-{asset.code}")).to_have_class(
            re.compile("review-approved")
        )
    expect(page.locator("#selection-count")).to_contain_text("Select with")
    shots = Shots(page, artifacts_dir / "review-bulk")
    shots.take("bulk-approved")
    assert Asset.objects.filter(review_status=S.APPROVED).count() == 3
    assert set(ReviewEvent.objects.values_list("comment", flat=True)) == {"Strong set"}

    # Filters go into the URL, ready to share.
    page.select_option("#f-status", "approved")
    page.wait_for_url(re.compile(r"\?status=approved$"))
    expect(cards).to_have_count(3)
    page.reload()
    expect(cards).to_have_count(3)
    expect(page.locator("#f-status")).to_have_value("approved")

    # At phone width the gallery fits without sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the gallery scrolls sideways at phone width ({width}px)"
    shots.take("phone")
    assert problems == [], problems
