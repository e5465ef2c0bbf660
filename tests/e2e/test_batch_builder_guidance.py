"""The batch builder and "change one thing" in a real browser, at 1440 px and 390 px (issue 18).

The builder: references picked by thumbnail (mouse and keyboard), a batch of free preview drafts
priced on each real backend with no provider configured, and an over-limit batch whose panel says
what is wrong with the count written one way ("3,600") while the banner, brought into view, stays
below the sticky top bar. Change one thing: another reference, seed, size and model; a size the
model cannot make is marked at its field. Screenshots go to var/test-artifacts/batch-guidance/; no
page logs a script error or has a sideways scroll at 390 px.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from generation.batches.services import batch_create
from generation.batches.spec import FIXED, Seeds, Size
from generation.models import Asset, Generation
from studio.models import Role
from tests.e2e.layout_checks import broken_headings
from tests.factories import (
    image_bytes,
    make_brand,
    make_campaign,
    make_member,
    make_workspace,
)
from tests.generation.batch_helpers import make_reference, make_version, matrix_spec

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = 'Poster: "{headline}" with the bag from {ref:product} {scene}'
SLOTS = [{"name": "product", "role": "product", "required": True}]
SIX_SIZES = "1024x1024, 768x768, 512x512, 1024x768, 768x1024, 1536x1024"


@pytest.fixture
def studio(settings: Any) -> Iterator[dict[str, Any]]:
    # No provider configured: only the offline preview backend is offered.
    settings.BFL_API_KEY = ""
    settings.STUDIO_BATCH_MAX_SIZE = 500
    workspace = make_workspace("Northwind")
    user = make_member(workspace, Role.EDITOR, "marketer")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Autumn launch")
    version = make_version(
        brand, body=BODY, reference_slots=SLOTS, campaign=campaign, name="Poster"
    )
    bag = make_reference(brand, role="product")
    cup = make_reference(brand, role="product", color=(20, 90, 200))
    with mock.patch("generation.tasks.wake_dispatcher"):
        yield {
            "workspace": workspace,
            "user": user,
            "campaign": campaign,
            "version": version,
            "bag": bag,
            "cup": cup,
        }


def _login(page: Any, live_server: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "marketer")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return problems


def _shot(page: Any, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.evaluate("() => window.innerWidth")
    assert width <= viewport, f"sideways scroll: {width} px wide at {viewport} px"


@pytest.mark.parametrize("width", [1440, 390])
def test_the_builder_picks_by_thumbnail_prices_drafts_and_explains_the_limit(
    live_server: Any,
    page: Any,
    studio: dict[str, Any],
    artifacts_dir: Path,
    width: int,
) -> None:
    from playwright.sync_api import expect

    folder = artifacts_dir / "batch-guidance"
    page.set_viewport_size({"width": width, "height": 900})
    problems = _login(page, live_server)
    template = studio["version"].template
    page.goto(f"{live_server.url}/batches/new/?template={template.code}")
    expect(page.locator("h1")).to_have_text("New batch")

    # References by thumbnail: each a radio labelled with the image and its name.
    options = page.locator("#slot-product .reference-option")
    expect(options).to_have_count(2)
    for ref in (studio["bag"], studio["cup"]):
        option = page.locator(f"label.reference-option:has(input[value='{ref.code}'])")
        expect(option.locator("img")).to_have_attribute(
            "src", f"/references/{ref.code}/thumbnail"
        )
        expect(option).to_contain_text(str(ref))
    page.locator("#slot-product").scroll_into_view_if_needed()  # lazy thumbnails
    page.wait_for_function(
        "() => [...document.querySelectorAll('.reference-option img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    # Mouse: a click on the thumbnail picks it; keyboard: the arrow moves to the next one.
    page.locator(
        f"label.reference-option:has(input[value='{studio['bag'].code}']) img"
    ).click()
    bag = page.locator(f"input[value='{studio['bag'].code}']")
    cup = page.locator(f"input[value='{studio['cup'].code}']")
    expect(bag).to_be_checked()
    bag.focus()
    page.keyboard.press("ArrowRight")
    expect(cup).to_be_checked()
    expect(cup).to_be_focused()

    # A batch of free drafts, no provider configured: said plainly, and priced on real backends.
    page.fill("#id_matrix_headline", "Autumn blend\nHalf price\nNew roast")
    page.fill("#id_matrix_scene", "on a marble table\nin a cosy cafe")
    for preset in page.locator("#size-presets input:checked").all():
        preset.uncheck()
    page.fill("#id_custom_sizes", "1024x1024")
    page.locator("#id_custom_sizes").blur()
    expect(page.locator("#variant-count")).to_have_text("6", timeout=10_000)
    expect(page.locator("#estimate-total")).to_have_text("$0.00")
    real = page.locator("#real-costs")
    expect(real).to_contain_text("Preview drafts are free")
    expect(real).to_contain_text("No provider is configured")
    # 6 images of 1 MP on FLUX.2 [pro] at $0.03, plus one 1 MP reference each at $0.015 (§1).
    expect(page.locator("#real-cost-bfl")).to_contain_text("$0.27")
    expect(page.locator("#real-cost-cloudflare")).to_contain_text("cannot make")
    _no_sideways_scroll(page)
    # The estimate tables' headings keep whole words at phone width ("IMAG ES" on main).
    assert broken_headings(page) == []
    _shot(page, folder, f"builder-drafts-{width}")

    # Over the limit: the panel says what is wrong; nothing claims a marked field.
    page.fill("#id_seed_count", "50")
    page.fill("#id_custom_sizes", SIX_SIZES)
    page.locator("#id_custom_sizes").blur()
    expect(page.locator("#variant-count")).to_have_text("1,800", timeout=10_000)
    panel = page.locator("#dispatch-problems")
    expect(panel).to_contain_text("This batch would make 1,800 images")
    expect(panel).to_contain_text("at most 500")
    assert "marked" not in panel.inner_text()
    expect(page.locator("#dispatch-button")).to_be_disabled()
    # The banner brought into view sits below the sticky top bar, not under it.
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.evaluate("() => document.querySelector('#builder-errors').scrollIntoView()")
    top = page.evaluate(
        "() => document.querySelector('#builder-errors').getBoundingClientRect().top"
    )
    bar = page.evaluate(
        "() => document.querySelector('.topbar').getBoundingClientRect().bottom"
    )
    assert top >= bar, (top, bar)
    _no_sideways_scroll(page)
    _shot(page, folder, f"builder-over-limit-{width}")
    assert problems == [], problems


def _asset(studio: dict[str, Any]) -> Asset:
    """A preview batch's image made with the bag (stored directly: no worker needed)."""
    batch = batch_create(
        campaign=studio["campaign"],
        version=studio["version"],
        spec=matrix_spec(
            headlines=("Autumn blend",),
            scenes=("here",),
            seeds=Seeds(FIXED, values=(4242,)),
            sizes=(Size(1024, 1024),),
            references={"product": str(studio["bag"].code)},
        ),
        user=studio["user"],
    )
    generation = Generation.objects.get(batch=batch)
    content = image_bytes(size=(64, 64))
    base = f"generations/{studio['workspace'].code}/{generation.code}"
    Generation.objects.filter(pk=generation.pk).update(
        state="succeeded", finished_at=timezone.now()
    )
    return Asset.objects.create(
        workspace=studio["workspace"],
        generation=generation,
        file=default_storage.save(f"{base}/image.png", ContentFile(content)),
        thumbnail=default_storage.save(f"{base}/thumb.png", ContentFile(content)),
        width=64,
        height=64,
        format="png",
        content_type="image/png",
        byte_size=len(content),
        sha256="0" * 64,
    )


@pytest.mark.parametrize("width", [1440, 390])
def test_change_one_thing_changes_a_reference_seed_size_or_model(
    live_server: Any,
    page: Any,
    studio: dict[str, Any],
    artifacts_dir: Path,
    width: int,
) -> None:
    from playwright.sync_api import expect

    folder = artifacts_dir / "batch-guidance"
    asset = _asset(studio)
    page.set_viewport_size({"width": width, "height": 900})
    problems = _login(page, live_server)
    url = f"{live_server.url}/assets/{asset.code}/variant/"
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Change one thing")
    expect(page.locator(f"input[value='{studio['bag'].code}']")).to_be_checked()
    expect(page.locator("#id_seed")).to_have_value("4242")
    expect(page.locator("#id_model")).to_have_value("preview:flux-2-pro")
    _no_sideways_scroll(page)
    _shot(page, folder, f"change-one-thing-{width}")

    # A size the model cannot make is refused at its field, nothing is queued.
    page.fill("#id_width", "1000")
    page.click("text=Make the variant")
    expect(page.locator(".field.has-error #id_width")).to_be_visible()
    expect(page.locator("#id_width_error")).to_contain_text("multiple of 16")
    assert not Generation.objects.filter(parent=asset.generation).exists()
    _shot(page, folder, f"change-one-thing-refused-{width}")

    # Another reference, picked by its thumbnail.
    page.fill("#id_width", "1024")
    page.locator(
        f"label.reference-option:has(input[value='{studio['cup'].code}']) img"
    ).click()
    page.click("text=Make the variant")
    expect(page.locator("#messages")).to_contain_text(
        "Variant queued: only the reference image changed."
    )
    variant = Generation.objects.get(parent=asset.generation)
    assert list(variant.changes) == ["references"]
    assert variant.references[0]["code"] == str(studio["cup"].code)

    # The seed and the model together: both recorded, both named.
    page.fill("#id_seed", "7")
    page.select_option("#id_model", "preview:flux-2-flex")
    page.click("text=Make the variant")
    expect(page.locator("#messages")).to_contain_text(
        "only the seed and the model changed"
    )
    latest = Generation.objects.filter(parent=asset.generation).latest("pk")
    assert (latest.seed, latest.model) == (7, "flux-2-flex")
    expect(page.locator("#variant-list li")).to_have_count(2)
    _no_sideways_scroll(page)
    _shot(page, folder, f"change-one-thing-variants-{width}")
    assert problems == [], problems
