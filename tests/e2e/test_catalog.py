"""The catalog in a real browser: import → coverage → batch for the gaps → approve → export by
product.

An editor-admin uploads a 4-product CSV with a ZIP (one row broken on purpose), sees the preview's
refused line, confirms, watches the import finish; opens coverage, filters the gaps in "Hero on
white", clicks "Batch for the gaps" on the preview backend and lands on the batch page; the
generations are driven to success in-process (the engine's own steps, as in
tests/generation/batch_helpers.py); the images are approved in the batch gallery; coverage is
full; "Export by product" builds the pack (the export task run in-process) and the ZIP holds
`<sku>/hero_1.jpg`. Workers are replaced by running the same service calls from the test thread
while the page polls, so progress is seen as a user sees it. Screenshots: var/test-artifacts/catalog/.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from campaigns.models import PromptTemplate, TemplateVersion
from campaigns.prompting import template_variables
from catalog import services as catalog_services
from catalog.models import ProductGeneration, Shot
from exports.services import export_pack_build
from generation.engine import dispatch as engine_dispatch
from generation.engine import ingest as engine_ingest
from generation.engine import poll as engine_poll
from generation.engine import submit as engine_submit
from generation.models import Asset, Batch, Generation
from studio.models import Role
from tests.catalog.helpers import make_catalog, to_csv, to_zip
from tests.factories import make_brand, make_campaign, make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _run_generation(generation: Generation) -> None:
    """The engine's steps in-process (the preview backend finishes in the submit step)."""
    engine_dispatch.generation_dispatch_one(generation_id=generation.pk)
    nxt = engine_submit.generation_submit(generation_id=generation.pk)
    for _ in range(20):
        Generation.objects.filter(pk=generation.pk, due_at__isnull=False).update(
            due_at=timezone.now()
        )
        if nxt.action == "submit":
            nxt = engine_submit.generation_submit(generation_id=generation.pk)
        elif nxt.action == "poll":
            nxt = engine_poll.generation_poll(
                generation_id=generation.pk, seq=nxt.poll_seq
            )
        elif nxt.action == "ingest":
            nxt = engine_ingest.generation_ingest(generation_id=generation.pk)
        else:
            break


class Shots:
    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(
            path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True
        )


def test_import_coverage_gap_batch_approve_export(
    live_server: Any,
    page: Any,
    artifacts_dir: Path,
    settings: Any,
    monkeypatch: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    import catalog.tasks
    import exports.tasks

    settings.ENGINE_REDIS_PREFIX = f"test-e2e-catalog-{uuid.uuid4().hex[:8]}"
    # The workers' messages are recorded and their services run from this thread.
    queued: dict[str, list[int]] = {"import": [], "export": []}
    monkeypatch.setattr(
        catalog.tasks.catalog_import_run, "delay", queued["import"].append
    )
    monkeypatch.setattr(
        exports.tasks.export_pack_build_task, "delay", queued["export"].append
    )
    monkeypatch.setattr("generation.tasks.wake_dispatcher", lambda *a, **k: None)

    workspace = make_workspace("Northwind")
    make_member(workspace, Role.ADMIN, "dana")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Catalog refresh")
    body = "{product.name} packshot {scene}, soft shadow"
    template = PromptTemplate.objects.create(
        workspace=workspace, brand=brand, campaign=campaign, name="Hero packshot"
    )
    TemplateVersion.objects.create(
        workspace=workspace, template=template, number=1, kind="text", body=body,
        variables=template_variables(body, "text"),
    )  # fmt: skip
    Shot.objects.create(
        workspace=workspace, brand=brand, key="hero", name="Hero on white",
        template=template, width=512, height=512, position=1,
    )  # fmt: skip
    Shot.objects.create(
        workspace=workspace, brand=brand, key="lifestyle", name="Lifestyle",
        width=512, height=512, position=2,
    )  # fmt: skip
    rows, files = make_catalog(4, roles=("front", "side"))
    rows[2][4] = "img/not-in-the-zip.png"  # SKU-0001 (line 3) is refused
    csv_path = tmp_path / "shop.csv"
    csv_path.write_bytes(to_csv(rows))
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(to_zip(files))

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None,
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    shots = Shots(page, artifacts_dir / "catalog")
    base = live_server.url
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")

    # Import: the brand page's Catalog button, upload, preview by line, confirm, progress.
    page.goto(f"{base}/brands/{brand.code}/")
    page.click("#brand-catalog")
    expect(page.locator("#no-products")).to_be_visible()
    page.set_input_files("#id_csv_file", str(csv_path))
    page.set_input_files("#id_images", str(zip_path))
    shots.take("catalog-empty-upload")
    page.click("#import-preview")
    expect(page.locator("#import-state")).to_have_text("Queued")
    shots.take("preview-queued")
    catalog_services.catalog_import_job_run(import_id=queued["import"].pop())
    expect(page.locator("#import-state")).to_have_text("Done", timeout=10_000)
    expect(page.locator("#import-errors")).to_contain_text("not-in-the-zip.png")
    assert page.locator("#import-errors tbody td").first.inner_text() == "3"
    expect(page.locator("#import-summary")).to_contain_text("Would create 3")
    shots.take("preview-errors-by-line")
    page.click("#import-confirm")
    expect(page.locator("#import-state")).to_have_text("Queued")
    catalog_services.catalog_import_job_run(import_id=queued["import"].pop())
    expect(page.locator("#import-summary")).to_contain_text("Created 3", timeout=10_000)
    shots.take("import-done")
    page.click("#import-to-catalog")
    expect(page.locator(".catalog-products tbody tr")).to_have_count(3)
    expect(page.locator(".catalog-products img")).to_have_count(6)
    # Every thumbnail decoded (a function, not an expression string: the CSP forbids eval).
    page.wait_for_function(
        "() => [...document.querySelectorAll('.catalog-products img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shots.take("catalog-with-thumbnails")

    # Coverage: every hero is a gap; filter, batch for the gaps.
    page.click(".catalog-tabs a:has-text('Coverage')")
    expect(page.locator("#coverage-table td.gap")).to_have_count(6)
    page.select_option("#filter-missing", "hero")
    page.click("#coverage-filters button[type=submit]")
    expect(page.locator("#gap-batch h2")).to_have_text(
        "3 products missing “Hero on white”"
    )
    page.fill("input[name=value_scene]", "on a white sweep")
    shots.take("coverage-gaps-hero")
    page.click("#gap-batch-button")
    page.wait_for_url(f"{base}/batches/**")
    batch = Batch.objects.get()
    assert page.url.rstrip("/").endswith(str(batch.code))
    shots.take("gap-batch-page")
    links = list(ProductGeneration.objects.filter(generation__batch=batch))
    assert sorted(link.product.sku for link in links) == [
        "SKU-0000",
        "SKU-0002",
        "SKU-0003",
    ]
    for link in links:
        _run_generation(link.generation)
    assert Asset.objects.filter(batch=batch).count() == 3

    # Approve in the batch gallery (bulk selection).
    page.goto(f"{base}/batches/{batch.code}/gallery/")
    for asset in Asset.objects.filter(batch=batch):
        page.check(f"#asset-{asset.code} .asset-check")
    page.click("#bulk-form button[value=approve]")
    expect(page.locator("#review-live")).to_have_text("Approved: 3 of 3 images.")
    shots.take("gallery-approved")

    # Coverage is full for hero; export by product.
    page.goto(f"{base}/brands/{brand.code}/catalog/coverage/")
    expect(page.locator("#coverage-table td.covered")).to_have_count(3)
    expect(page.locator("#coverage-table td.gap")).to_have_count(3)  # lifestyle
    shots.take("coverage-after-approval")
    page.click("#export-by-product")
    expect(page.locator("#pack-status")).to_be_visible()
    export_pack_build(pack_id=queued["export"].pop())
    expect(page.locator("#pack-download")).to_be_visible(timeout=15_000)
    shots.take("export-ready")
    with page.expect_download() as info:
        page.click("#pack-download")
    data = Path(info.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        names = sorted(n for n in zipped.namelist() if "/" in n)
    assert names == [
        "SKU-0000/hero_1.jpg",
        "SKU-0002/hero_1.jpg",
        "SKU-0003/hero_1.jpg",
    ]
    page.goto(f"{base}/brands/{brand.code}/catalog/coverage/")
    with page.expect_download() as info:
        page.click("#results-csv")
    table = Path(info.value.path()).read_text("utf-8-sig").splitlines()
    assert table[0] == "sku,name,colour,material,hero_files,lifestyle_files"
    assert table[1].endswith(",SKU-0000/hero_1.jpg,")
    assert not errors, errors
