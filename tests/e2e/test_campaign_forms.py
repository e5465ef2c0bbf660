"""Issue 18 in a real browser: the brand kit's colour pickers and marked fields, "New campaign"
from the campaigns list, and the word-level template diff, at 1440 px and 390 px.

Screenshots go to the test artefacts (campaign-forms/); no page may log a console error (a CSP
violation included) or scroll sideways at phone width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.models import Brand, Campaign
from campaigns.prompt_templates import template_version_create
from studio.models import Role
from tests.factories import make_brand, make_member, make_template, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDE, PHONE = 1440, 390
BAD = "rgb(179, 38, 30)"  # --bad in static/css/studio.css


class Shots:
    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder = page, folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        width = self.page.viewport_size["width"]
        self.page.screenshot(
            path=str(self.folder / f"{name}-{width}.png"), full_page=True
        )


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")


def _watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def _no_sideways_scroll(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


@pytest.mark.parametrize("width", [WIDE, PHONE])
def test_the_palette_pickers_follow_the_hex_fields_and_bad_ones_are_marked(
    live_server: Any, page: Any, artifacts_dir: Path, width: int
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    make_member(workspace, Role.EDITOR, "dana")
    problems = _watch(page)
    page.set_viewport_size({"width": width, "height": 900})
    shots = Shots(page, artifacts_dir / "campaign-forms")
    _login(page, live_server.url, "dana")

    page.goto(f"{live_server.url}/brands/new/")
    page.fill("input[name=name]", "Northwind Roasters")
    rows = page.locator(".palette-row")
    expect(rows).to_have_count(3)
    # The script switched the pickers on; an empty row's picker is hatched (no colour yet).
    first = rows.nth(0)
    picker, hex_field = (
        first.locator("input[type=color]"),
        first.locator("input[name=palette_hex]"),
    )
    expect(picker).to_be_enabled()
    expect(picker).to_have_class("colour-pick unset")

    # Text -> picker: a short hex moves the picker to its full form.
    first.locator("input[name=palette_name]").fill("Espresso")
    hex_field.fill("#3b2")
    expect(picker).to_have_value("#33bb22")
    expect(picker).to_have_class("colour-pick")
    # Picker -> text.
    picker.fill("#3b2416")
    expect(hex_field).to_have_value("#3B2416")

    # A bad hex on the second row, and a row added by "+ Add colour" gets a working picker.
    second = rows.nth(1)
    second.locator("input[name=palette_name]").fill("Crema")
    second.locator("input[name=palette_hex]").fill("#F3E5C")
    expect(second.locator("input[type=color]")).to_have_class("colour-pick unset")
    page.click("text=+ Add colour")
    expect(rows).to_have_count(4)
    added = rows.nth(3)
    expect(added.locator("input[type=color]")).to_be_enabled()
    added.locator("input[name=palette_name]").fill("Harbour")
    added.locator("input[type=color]").fill("#1f4e5f")
    expect(added.locator("input[name=palette_hex]")).to_have_value("#1F4E5F")

    page.click("button:has-text('Create brand')")
    # The server refused it and marked the bad field itself, with the message beside it.
    bad = page.locator(".palette-row").nth(1).locator("input[name=palette_hex]")
    expect(bad).to_have_attribute("aria-invalid", "true")
    message = page.locator("#palette-2-error")
    expect(message).to_have_text("“#F3E5C” is not a hex colour like #1A1A2E.")
    expect(bad).to_have_attribute("aria-describedby", "palette-2-error")
    assert bad.evaluate("e => getComputedStyle(e).borderTopColor") == BAD
    # The other fields are not marked; the picker shows the good colours again.
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)
    expect(
        page.locator(".palette-row").nth(0).locator("input[type=color]")
    ).to_have_value("#3b2416")
    _no_sideways_scroll(page)
    shots.take("brand-form-bad-hex")

    # Picking a colour fixes the field: the mark goes, and the brand saves.
    page.locator(".palette-row").nth(1).locator("input[type=color]").fill("#f3e5c8")
    expect(bad).to_have_value("#F3E5C8")
    expect(bad).not_to_have_attribute("aria-invalid", "true")
    expect(message).to_have_count(0)
    shots.take("brand-form-fixed")
    page.click("button:has-text('Create brand')")
    expect(page.locator("h1")).to_have_text("Northwind Roasters")
    brand = Brand.objects.get(name="Northwind Roasters")
    assert [c["hex"] for c in brand.palette] == ["#3B2416", "#F3E5C8", "#1F4E5F"]

    # Editing shows each saved colour in its picker.
    page.goto(f"{live_server.url}/brands/{brand.code}/edit/")
    expect(page.locator(".palette-row input[type=color]").nth(2)).to_have_value(
        "#1f4e5f"
    )
    _no_sideways_scroll(page)
    shots.take("brand-form-edit")
    assert problems == []


@pytest.mark.parametrize("width", [WIDE, PHONE])
def test_a_new_campaign_starts_from_the_list_with_a_brand_picked(
    live_server: Any, page: Any, artifacts_dir: Path, width: int
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    make_member(workspace, Role.EDITOR, "dana")
    make_brand(workspace, name="Northwind Roasters")
    tea = make_brand(workspace, name="Harbour Tea")
    make_brand(make_workspace("Globex"), name="Globex Secret Brand")
    problems = _watch(page)
    page.set_viewport_size({"width": width, "height": 900})
    shots = Shots(page, artifacts_dir / "campaign-forms")
    _login(page, live_server.url, "dana")

    page.goto(f"{live_server.url}/campaigns/")
    _no_sideways_scroll(page)
    shots.take("campaign-list")
    page.click("a.btn.primary:has-text('New campaign')")
    expect(page.locator("h1")).to_have_text("New campaign")
    options = page.locator("select[name=brand] option")
    expect(options).to_have_text(
        ["Choose a brand", "Harbour Tea", "Northwind Roasters"]
    )
    page.fill("input[name=name]", "Spring tea")
    page.click("button:has-text('Create campaign')")
    # No brand picked: the brand field is marked.
    expect(page.locator("select[name=brand]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_brand_error")).to_have_text("This field is required.")
    _no_sideways_scroll(page)
    shots.take("campaign-new-no-brand")
    page.select_option("select[name=brand]", label="Harbour Tea")
    page.click("button:has-text('Create campaign')")
    expect(page.locator("h1")).to_have_text("Spring tea")
    assert Campaign.objects.get(name="Spring tea").brand == tea
    assert problems == []


@pytest.mark.parametrize("width", [WIDE, PHONE])
def test_the_template_diff_marks_the_changed_words_inside_a_line(
    live_server: Any, page: Any, artifacts_dir: Path, width: int
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    editor = make_member(workspace, Role.EDITOR, "dana")
    template = make_template(
        make_brand(workspace, name="Northwind Roasters"),
        body="Product shot of the {product} on an oak table, warm morning light, "
        'headline "{headline}" in bold serif at the top',
        author=editor,
    )
    template_version_create(
        template=template,
        kind="text",
        body="Product shot of the {product} on a marble table, warm morning light, "
        'headline "{headline}" in bold serif at the top, golden hour',
        reference_slots=[],
        parameters=template.latest_version.parameters,
        change_note="Marble and golden hour",
        author=editor,
    )
    problems = _watch(page)
    page.set_viewport_size({"width": width, "height": 900})
    shots = Shots(page, artifacts_dir / "campaign-forms")
    _login(page, live_server.url, "dana")

    page.goto(f"{live_server.url}/templates/{template.code}/diff/")
    removed, added = page.locator(".diff div.del"), page.locator(".diff div.add")
    expect(removed).to_have_count(1)
    expect(added).to_have_count(1)
    expect(removed.locator("del")).to_have_text(["an oak"])
    expect(added.locator("ins")).to_have_text(["a marble", ", golden hour"])
    # The marks sit inside the line, shaded apart from the unchanged words.
    shades = added.evaluate(
        "line => [getComputedStyle(line).backgroundColor,"
        " getComputedStyle(line.querySelector('ins')).backgroundColor]"
    )
    assert shades[0] != shades[1]
    _no_sideways_scroll(page)
    shots.take("template-diff")
    assert problems == []
