"""Issue 18 in a real browser: asset titles and the gallery grouped by batch (across the scroll
sentinel's pages), the gallery on a phone (the filters behind one button, the first images on the
first screen), and the operator page (its model table fits at 1440 px; at 390 px nothing scrolls
sideways and the tables keep readable columns). Screenshots go to var/test-artifacts/gallery/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from generation.batches.spec import FIXED, Seeds
from generation.gallery import queries as gallery
from generation.models import Batch
from studio.models import Role
from tests.e2e.test_review import Shots, _login
from tests.factories import (
    make_asset,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)
from tests.generation.batch_helpers import make_version, matrix_spec

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEADLINES = [f"Offer {n}" for n in range(15)]
COLOURS = ["teal", "coral"]
SIDEWAYS = (
    "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
)


def _batches(campaign: Any) -> list[Batch]:
    """Two batches of 30 variants (15 headlines × 2 colours), made in interleaved order, so the
    gallery's date order mixes them and only grouping brings each together."""
    version = make_version(
        campaign.brand,
        campaign=campaign,
        name="Spring launch",
        body='Poster "{headline}" on {colour}',
    )
    spec = matrix_spec(
        headlines=HEADLINES, scenes=COLOURS, seeds=Seeds(FIXED, values=(7,))
    ).as_json()
    spec["matrix"] = [["headline", HEADLINES], ["colour", COLOURS]]
    batches = [
        Batch.objects.create(
            workspace=campaign.workspace,
            campaign=campaign,
            brand=campaign.brand,
            template_version=version,
            name=name,
            spec=spec,
            state="finished",
        )
        for name in ("Wave one", "Wave two")
    ]
    for headline in HEADLINES:
        for colour in COLOURS:
            for batch in batches:
                make_asset(
                    campaign,
                    batch=batch,
                    template_version=version,
                    variables={"headline": headline, "colour": colour},
                    seed=7,
                )
    return batches


def test_titles_and_grouping_by_batch_across_pages(
    live_server: Any, page: Any, artifacts_dir: Any
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    make_member(workspace, Role.APPROVER, "ann")
    campaign = make_campaign(make_brand(workspace, name="Northwind"), name="Spring")
    one, two = _batches(campaign)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1440, "height": 900})
    shots = Shots(page, artifacts_dir / "gallery")
    base = live_server.url
    _login(page, base, "ann")
    page.goto(f"{base}/campaigns/{campaign.code}/gallery/")
    cards = page.locator(".asset-card")
    expect(cards).to_have_count(gallery.PAGE_SIZE)
    # The newest card is wave two's last variant: named by the values its batch varies.
    expect(page.locator(".asset-title").first).to_have_text(
        "Spring launch — headline: Offer 14 · colour: coral"
    )
    expect(page.locator(".batch-heading")).to_have_count(0)

    # Grouping is a filter-form choice: the results swap in place and the URL says so.
    page.select_option("#f-group", "batch")
    page.wait_for_url(re.compile(r"\?group=batch$"))
    headings = page.locator(".batch-heading")
    expect(headings).to_have_count(2)  # wave two's 30, then wave one's first 18
    expect(headings.first).to_contain_text("Wave two")
    expect(headings.first).to_contain_text("Spring launch v1")
    expect(headings.first).to_contain_text("30 images")
    shots.take("grouped-1440")
    # The scroll sentinel continues wave one without heading it again.
    page.locator("#gallery-more").scroll_into_view_if_needed()
    expect(cards).to_have_count(60)
    expect(headings).to_have_count(2)
    order = page.evaluate(
        """() => Array.from(document.querySelectorAll('#asset-grid > *')).map(
            el => el.classList.contains('batch-heading') ? 'H' + el.dataset.batch : 'c')"""
    )
    assert order == [f"H{two.pk}", *["c"] * 30, f"H{one.pk}", *["c"] * 30], order
    heading_link = headings.nth(1).locator("a").first
    expect(heading_link).to_have_attribute(
        "href", reverse("generation:batch-detail", args=[one.code])
    )

    # The asset page is named the same way.
    page.locator(".asset-thumb").first.click()
    expect(page.locator("h1")).to_have_text(
        "Spring launch — headline: Offer 14 · colour: coral"
    )
    assert errors == [], errors


def test_the_gallery_on_a_phone_shows_images_first(
    live_server: Any, page: Any, artifacts_dir: Any
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    make_member(workspace, Role.EDITOR, "eve")
    campaign = make_campaign(make_brand(workspace, name="Northwind"), name="Spring")
    for n in range(6):
        make_asset(campaign, prompt=f"A mug of coffee on a linen cloth, take {n}")
    page.set_viewport_size({"width": 390, "height": 844})
    shots = Shots(page, artifacts_dir / "gallery")
    base = live_server.url
    _login(page, base, "eve")
    page.goto(f"{base}/campaigns/{campaign.code}/gallery/")
    assert page.evaluate(SIDEWAYS) <= 0
    expect(page.locator("#gallery-filters")).to_be_hidden()
    expect(page.locator("#bulk-form button[value=star]")).to_be_hidden()
    # The first row of images is on the first screen, whole.
    first = page.locator(".asset-card").first.bounding_box()
    assert first is not None and first["y"] + first["height"] <= 844, first
    shots.take("phone-first-screen-390")
    # One button opens the filters; selecting an image brings its actions.
    page.click("#filters-toggle-label")
    expect(page.locator("#gallery-filters")).to_be_visible()
    page.click("#filters-toggle-label")
    expect(page.locator("#gallery-filters")).to_be_hidden()
    page.locator(".asset-check").first.check()
    expect(page.locator("#bulk-form button[value=star]")).to_be_visible()
    assert page.evaluate(SIDEWAYS) <= 0
    shots.take("phone-selected-390")


def test_the_operator_page_fits_at_1440_and_390(
    live_server: Any, page: Any, artifacts_dir: Any
) -> None:
    workspace = make_workspace("Acme")
    make_member(workspace, Role.ADMIN, "alice")
    shots = Shots(page, artifacts_dir / "gallery")
    base = live_server.url
    _login(page, base, "alice")

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{base}/operator/")
    assert page.evaluate(SIDEWAYS) <= 0
    fit = page.evaluate(
        """() => { const t = document.getElementById('model-table');
            return [t.scrollWidth, t.parentElement.clientWidth]; }"""
    )
    assert fit[0] <= fit[1], f"the model table needs {fit[0]} px of {fit[1]}"
    shots.take("operator-1440")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate(SIDEWAYS) <= 0, "the operator page scrolls sideways at 390 px"
    # Readable, not squeezed a letter per line: each table keeps its columns and scrolls in
    # its own box instead.
    narrowest = page.evaluate(
        """() => Math.min(...Array.from(document.querySelectorAll(
            '.operator-page table.table tbody tr:first-child td')).map(
            td => td.getBoundingClientRect().width))"""
    )
    assert narrowest >= 60, f"a table column is {narrowest:.0f} px wide at 390 px"
    shots.take("operator-390")
