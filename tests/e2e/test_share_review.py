"""Outside review in a browser: an approver shares a gallery selection from the bulk bar, a
client without an account opens the link, gives a name, approves one image and comments on the
other; the decisions show in the studio. Screenshots go to var/test-artifacts/share/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generation.models import Comment, ReviewEvent
from studio.models import Role
from tests.exports.helpers import approved_asset
from tests.factories import make_brand, make_campaign, make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_client_reviews_a_shared_selection(
    live_server: Any, page: Any, browser: Any, artifacts_dir: Path
) -> None:
    workspace = make_workspace("Northwind")
    make_member(workspace, Role.APPROVER, "alex")
    campaign = make_campaign(
        make_brand(workspace, name="Northwind Roasters"), name="Autumn"
    )
    pending = approved_asset(campaign, review_status="pending", size=(640, 800))
    approved = approved_asset(campaign, size=(640, 800))
    shots = artifacts_dir / "share"
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "alex")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/campaigns/{campaign.code}/gallery/")
    for asset in (pending, approved):
        page.check(f"#asset-{asset.code} .asset-check")
    page.click("#share-button")
    page.wait_for_selector("#share-url")
    page.screenshot(path=str(shots / "01-link-made.png"), full_page=True)
    url = page.input_value("#share-url")

    client = browser.new_context().new_page()  # no session, no account
    client.goto(url)
    client.fill("#reviewer-name", "Jane Client (Acme Ads)")
    client.screenshot(path=str(shots / "02-name-asked.png"), full_page=True)
    client.click("#reviewer-go")
    client.wait_for_selector("#reviewer")
    card = f"#a-{pending.code.hex[:8]}"
    client.click(f"{card} button[value=approve]")
    client.wait_for_selector(f"{card} .fb")
    other = f"#a-{approved.code.hex[:8]}"
    client.fill(f"{other} textarea", "Can the logo be smaller?")
    client.click(f"{other} button[value=comment]")
    client.wait_for_selector(f"{other} .fb")
    client.screenshot(path=str(shots / "03-client-decided.png"), full_page=True)
    assert "Jane Client" in client.inner_text(f"{card} .fb")
    assert client.evaluate(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )

    event = ReviewEvent.objects.get(asset=pending)
    assert event.to_status == "approved" and event.comment.startswith("[external] Jane")
    assert Comment.objects.get(asset=approved).body.endswith("Can the logo be smaller?")
    page.goto(f"{base}/exports/shares/")
    page.screenshot(path=str(shots / "04-links-page.png"), full_page=True)
    assert "Jane Client (Acme Ads)" in page.inner_text("table")
