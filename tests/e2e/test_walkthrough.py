"""A newcomer's walk through the studio in a real browser: brand → references → campaign → template.

Every page is screenshotted at laptop and phone widths into the test artefacts folder
(var/test-artifacts/walkthrough/), and no page may log a CSP violation or a script error.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from campaigns.models import Brand, Campaign, PromptTemplate, ReferenceImage
from studio.models import Role
from tests.factories import make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _packshot(color: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (640, 640), (240, 232, 220))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((200, 120, 440, 560), radius=24, fill=color)
    draw.rectangle((240, 260, 400, 360), fill=(250, 245, 235))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
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


def test_a_newcomer_walks_brand_references_campaign_template(
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
    make_member(workspace, Role.ADMIN, "newcomer")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_viewport_size({"width": 1280, "height": 900})
    shots = Shots(page, artifacts_dir / "walkthrough")

    # Log in.
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    shots.take("login")
    page.fill("input[name=username]", "newcomer")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Northwind")
    shots.take("home")

    # Brand kit: a palette with one bad colour first, then fixed.
    page.click("text=New brand")
    page.fill("input[name=name]", "Northwind Roasters")
    names, hexes = (
        page.locator("input[name=palette_name]"),
        page.locator("input[name=palette_hex]"),
    )
    names.nth(0).fill("Espresso")
    hexes.nth(0).fill("#3b2416")
    names.nth(1).fill("Crema")
    hexes.nth(1).fill("#F3E5C")
    page.click("text=+ Add colour")
    expect(names).to_have_count(4)
    names.nth(3).fill("Harbour")
    hexes.nth(3).fill("#1F4E5F")
    page.fill("textarea[name=fonts]", "Fraunces — headlines\nInter — body")
    page.fill(
        "textarea[name=typography_hints]", "Bold serif headlines, short and large"
    )
    page.fill("textarea[name=words_to_avoid]", "cheap, instant")
    page.check("input[value=instagram-square]")
    page.click("button:has-text('Create brand')")
    expect(page.locator(".error")).to_contain_text("“#F3E5C” is not a hex colour")
    shots.take("brand-form-error")
    page.locator("input[name=palette_hex]").nth(1).fill("#F3E5C8")
    page.click("button:has-text('Create brand')")
    expect(page.locator("h1")).to_have_text("Northwind Roasters")
    brand = Brand.objects.get(name="Northwind Roasters")
    assert [c["hex"] for c in brand.palette] == ["#3B2416", "#F3E5C8", "#1F4E5F"]
    expect(page.locator(".palette figure")).to_have_count(3)
    shots.take("brand")

    # Reference library: two packshots through the uploader, then a filter.
    page.click("text=Reference library")
    page.select_option("select[name=role]", "product")
    page.fill("input[name=tags]", "autumn, packshot")
    page.set_input_files(
        "#reference-files",
        files=[
            {
                "name": "bag-brown.jpg",
                "mimeType": "image/jpeg",
                "buffer": _packshot((90, 50, 30)),
            },
            {
                "name": "bag-blue.jpg",
                "mimeType": "image/jpeg",
                "buffer": _packshot((30, 78, 95)),
            },
        ],
    )
    expect(page.locator(".uploads li.done")).to_have_count(2)
    expect(page.locator("#reference-cards .reference-card")).to_have_count(2)
    assert ReferenceImage.objects.filter(brand=brand, role="product").count() == 2
    shots.take("references")

    # Campaign.
    page.click(f"a[href='/brands/{brand.code}/']")
    page.click("a.btn.primary:has-text('New campaign')")
    page.fill("input[name=name]", "Autumn Blend Launch")
    page.select_option("select[name=objective]", "launch")
    page.fill("textarea[name=brief]", "Launch the autumn blend on social and the web.")
    page.fill("input[name=starts_on]", "2027-09-01")
    page.fill("input[name=ends_on]", "2027-10-15")
    page.fill("input[name=budget_cap]", "250")
    page.check("input[value=instagram-story]")
    shots.take("campaign-form")
    page.click("button:has-text('Create campaign')")
    expect(page.locator("h1")).to_have_text("Autumn Blend Launch")
    campaign = Campaign.objects.get(name="Autumn Blend Launch")
    assert str(campaign.budget_cap) == "250.00"
    page.select_option("#status-select", "active")
    page.click("button:has-text('Update status')")
    expect(page.locator("#campaign-status .pill")).to_have_text("Active")
    shots.take("campaign")

    # Prompt template: create, preview with values, then save a second version and see the diff.
    page.click("a:has-text('New prompt template')")
    page.fill("input[name=name]", "Packshot on a surface")
    page.fill(
        "textarea[name=body]",
        'Product shot of {ref:product} on {surface}, headline "{headline}" in bold serif at the top',
    )
    page.fill("textarea[name=reference_slots]", "product: product")
    shots.take("template-form")
    page.click("button:has-text('Create template')")
    expect(page.locator("h1")).to_contain_text("Packshot on a surface")
    template = PromptTemplate.objects.get(name="Packshot on a surface")
    assert template.campaign == campaign
    page.fill("input[name=var_surface]", "an oak table")
    page.fill("input[name=var_headline]", "Autumn Blend is here")
    page.click("#try-it button[type=submit]")
    expect(page.locator("#preview-result")).to_contain_text("#3B2416 (Espresso)")
    expect(page.locator("#preview-result")).to_contain_text("an oak table")
    shots.take("template-preview")
    page.fill("input[name=var_headline]", "Cheap coffee")
    page.click("#try-it button[type=submit]")
    expect(page.locator("#preview-result")).to_contain_text("cheap")
    shots.take("template-preview-avoided-word")

    page.click("a:has-text('Save new version')")
    page.fill(
        "textarea[name=body]",
        'Product shot of {ref:product} on {surface}, golden hour, headline "{headline}" in bold serif at the top',
    )
    page.fill("input[name=change_note]", "Golden hour light")
    page.click("button:has-text('Save version 2')")
    expect(page.locator("h1")).to_contain_text("Packshot on a surface")
    assert template.versions.count() == 2
    page.goto(f"{live_server.url}/templates/{template.code}/diff/")
    expect(page.locator(".diff .add").first).to_contain_text("golden hour")
    shots.take("template-diff")

    # The same pages at phone width.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        storage_state=page.context.storage_state(),
    )
    phone_page = phone.new_page()
    phone_shots = Shots(phone_page, artifacts_dir / "walkthrough-phone")
    for name, path in [
        ("home", "/"),
        ("brand", f"/brands/{brand.code}/"),
        ("references", f"/brands/{brand.code}/references/"),
        ("campaign", f"/campaigns/{campaign.code}/"),
        ("template", f"/templates/{template.code}/"),
    ]:
        phone_page.goto(f"{live_server.url}{path}")
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways at phone width ({width}px)"
        phone_shots.take(name)
    phone.close()

    assert problems == [], problems
