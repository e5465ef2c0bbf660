"""The brand checks as a reviewer sees them, in a real browser: gallery badges and the flag filter,
the asset page's check card with swatches, the OCR table and the matched logo drawn on the image.

Screenshots go to var/test-artifacts/brand-checks/. No CSP violation or script error may occur
(the swatches are SVG fills because the CSP forbids inline styles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from PIL import ImageDraw

from campaigns.references import reference_create
from checks import tasks
from studio.models import Role
from tests.checks import drawing as d
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_checks_show_on_cards_filters_and_the_asset_page(
    live_server: Any, page: Any, artifacts_dir: Path, settings: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = str(tmp_path)
    workspace = make_workspace("Northwind")
    user = make_member(workspace, Role.APPROVER, "ann")
    brand = make_brand(workspace, name="Northwind Roasters", palette=d.BRAND)
    campaign = make_campaign(brand, name="Autumn Blend Launch")
    logo = reference_create(
        brand=brand,
        uploaded_file=ContentFile(d.png(d.logo()), name="logo.png"),
        user=user,
        role="logo",
        tags=[],
    )
    refs = [{"code": str(logo.code), "role": "logo"}]
    prompt = 'Poster, headline "Warm Up, Harbour"'
    good_scene = d.paste(
        d.painted_scene([c["hex"] for c in d.BRAND], (1080, 1080)),
        d.logo(),
        at=(620, 640),
        scale=1.0,
        angle=12,
    )
    draw = ImageDraw.Draw(good_scene)
    draw.rectangle((0, 40, 1080, 220), fill="#F4D35E")
    draw.text((70, 80), "Warm Up, Harbour", font=d.font(86), fill="#1A1A2E")
    bad_scene = d.painted_scene(["#2E7D32", "#6A1B9A", "#00ACC1"], (1080, 1080))
    ImageDraw.Draw(bad_scene).text(
        (70, 80), "Wram Up, Harbor", font=d.font(86), fill="#FFFFFF"
    )
    good = make_asset(campaign, image=d.png(good_scene), prompt=prompt, references=refs)
    bad = make_asset(campaign, image=d.jpeg(bad_scene), prompt=prompt, references=refs)
    tasks.asset_check(good.pk)
    tasks.asset_check(bad.pk)

    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    shots = artifacts_dir / "brand-checks"
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")

    page.goto(f"{base}/campaigns/{campaign.code}/gallery/")
    expect(page.locator(f"#asset-{bad.code} .check-badge.flag").first).to_be_visible()
    expect(page.locator(f"#asset-{good.code} .check-badge")).to_have_text("On brand")
    page.screenshot(path=str(shots / "01-gallery-badges.png"), full_page=True)

    page.select_option("#f-flag", "off-palette")
    expect(page.locator(f"#asset-{good.code}")).to_have_count(0)
    expect(page.locator(f"#asset-{bad.code}")).to_be_visible()
    assert "flag=off-palette" in page.url
    page.screenshot(path=str(shots / "02-gallery-off-palette.png"), full_page=True)

    page.goto(f"{base}/assets/{good.code}/")
    expect(page.locator("#brand-check")).to_be_visible()
    expect(page.locator(".check-regions polygon.logo")).to_have_count(1)
    page.screenshot(path=str(shots / "03-asset-on-brand.png"), full_page=True)
    page.goto(f"{base}/assets/{bad.code}/")
    expect(page.locator("#check-text")).to_contain_text("misspelled")
    page.locator("#brand-check").screenshot(
        path=str(shots / "04-asset-off-brand-card.png")
    )
    page.screenshot(path=str(shots / "05-asset-off-brand.png"), full_page=True)
    assert not problems, problems
