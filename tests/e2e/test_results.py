"""A/B results in a real browser: import an ad platform's export, read the charts, start the next round.

Screenshots go to var/test-artifacts/results/ at 1440 and 390 px; no page may log a script error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studio.models import Role
from tests.factories import make_brand, make_campaign, make_member, make_workspace
from tests.generation.batch_helpers import make_version
from tests.results.helpers import export_name, factorial_batch, meta_csv

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_media_buyer_imports_results_and_starts_the_next_round(
    live_server: Any, page: Any, artifacts_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    workspace = make_workspace("Northwind")
    buyer = make_member(workspace, Role.EDITOR, "buyer")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Autumn launch")
    version = make_version(brand, campaign=campaign, name="Magazine ad")
    batch, assets = factorial_batch(campaign, version, buyer)
    rows = [
        (
            export_name(a),
            60_000,
            900 if a.generation.variables["headline"] == "Warm up" else 600,
            30,
        )
        for a in assets
    ]
    export = tmp_path / "meta-export.csv"
    export.write_bytes(meta_csv(rows + [("Brand awareness video", 9000, 40, 0)]))

    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    folder = artifacts_dir / "results"
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 1000})

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "buyer")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit]")

    page.goto(f"{live_server.url}/campaigns/{campaign.code}/")
    page.click("a.btn:has-text('Results')")
    expect(page.locator("h1")).to_have_text("A/B results")
    page.set_input_files("#id_file", str(export))
    page.click("text=Read the columns")
    expect(page.locator("h1")).to_contain_text("Map the columns of meta-export.csv")
    expect(page.locator("select[name=clicks]")).to_have_value("Link clicks")
    page.screenshot(path=str(folder / "01-mapping.png"), full_page=True)
    page.click("button:has-text('Import')")

    expect(page.locator(".messages")).to_contain_text(
        f"{len(assets)} matched to images"
    )
    expect(page.locator("svg.interval-chart").first).to_be_visible()
    expect(page.locator(".axis-result", has_text="{headline}")).to_contain_text(
        "decided: Warm up"
    )
    expect(page.locator(".imports")).to_contain_text("1 row matched no image")
    page.screenshot(path=str(folder / "02-results.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(folder / "03-results-phone.png"), full_page=True)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth > window.innerWidth"
    )
    assert not overflow, "the results page scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1440, "height": 1000})

    page.click("text=Next round from the winners")
    expect(page.locator("h1")).to_have_text("New batch")
    expect(page.locator(".messages")).to_contain_text(
        "Fixed at the winners: {headline} = Warm up"
    )
    expect(page.locator("#id_matrix_headline")).to_have_value("Warm up")
    page.screenshot(path=str(folder / "04-next-round.png"), full_page=True)
    assert problems == []
