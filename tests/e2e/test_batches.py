"""A variant batch in a real browser, run by a real Celery worker against the fake BFL server.

The user opens a template, builds a 3×2 matrix with 2 random seeds on two backends (the offline
preview backend and BFL, served by tests/fakes/bfl_server.py on 127.0.0.1), sees 24 generations
and their estimated cost ($0.36: 12 × $0.03 for 1 MP on FLUX.2 [pro], the preview is free),
dispatches, watches the progress bar reach 100% and the 24 thumbnails arrive. Screenshots go to
var/test-artifacts/batches/; no page may log a CSP violation or a script error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaigns.models import PromptTemplate, TemplateVersion
from campaigns.prompting import template_variables
from generation.models import Asset, Batch, Generation, GenerationState
from studio.models import Role
from tests.factories import make_brand, make_campaign, make_member, make_workspace
from tests.fakes import bfl_server
from tests.fakes.bfl_server import FakeBFL
from tests.generation.test_engine_worker import Worker, engine_env  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = 'Magazine ad: the headline "{headline}" above a coffee bag {scene}, warm light'


@pytest.fixture
def fake() -> Iterator[FakeBFL]:
    nagle = bfl_server._Handler.disable_nagle_algorithm
    bfl_server._Handler.disable_nagle_algorithm = True
    with FakeBFL(latency=0.5, concurrency=24) as server:
        yield server
    bfl_server._Handler.disable_nagle_algorithm = nagle


@pytest.fixture
def worker(engine_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:  # noqa: F811
    started = Worker(engine_env, tmp_path, "batches").start()
    yield started
    started.stop()


class Shots:
    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(
            path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True
        )


def test_a_marketer_runs_a_24_variant_batch_across_two_backends(
    live_server: Any,
    page: Any,
    fake: FakeBFL,
    worker: Worker,
    artifacts_dir: Path,
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    workspace = make_workspace("Northwind")
    make_member(workspace, Role.EDITOR, "marketer")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Autumn launch")
    template = PromptTemplate.objects.create(
        workspace=workspace, brand=brand, campaign=campaign, name="Magazine ad"
    )
    TemplateVersion.objects.create(
        workspace=workspace,
        template=template,
        number=1,
        kind="text",
        body=BODY,
        variables=template_variables(BODY, "text"),
        parameters={"model": "flux-2-pro", "width": 1024, "height": 1024},
    )
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_viewport_size({"width": 1400, "height": 1000})
    shots = Shots(page, artifacts_dir / "batches")

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "marketer")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Northwind")

    # From the template's page to the builder.
    page.goto(f"{live_server.url}/templates/{template.code}/")
    page.click("text=New batch")
    expect(page.locator("h1")).to_have_text("New batch")
    expect(page.locator("input[value='preview:flux-2-pro']")).to_be_checked()
    shots.take("builder-empty")

    # A 3×2 matrix, 2 random seeds, FLUX.2 [pro] on the preview backend and on BFL.
    page.fill("#id_matrix_headline", "Autumn blend\nHalf price\nNew roast")
    page.fill("#id_matrix_scene", "on a marble table\nin a cosy cafe")
    page.fill("#id_seed_count", "2")
    page.check("input[value='bfl:flux-2-pro']")
    count = page.locator("#variant-count")
    expect(count).to_have_text("24", timeout=10_000)
    expect(page.locator("#estimate-total")).to_have_text("$0.36")
    expect(page.locator("#budget-fit")).to_contain_text("No budget cap")
    expect(page.locator(".prompt-list li")).to_have_count(6)
    expect(page.locator(".prompt-list li").first).to_contain_text(
        'the headline "Autumn blend" above a coffee bag on a marble table'
    )
    dispatch = page.locator("#dispatch-button")
    expect(dispatch).to_have_text("Dispatch 24 generations")
    shots.take("builder-preview")

    dispatch.click()
    expect(page.locator("h1")).to_contain_text("Magazine ad v1 · 24 variants")
    batch = Batch.objects.get(workspace=workspace)
    assert batch.size == 24
    shots.take("batch-running")

    # Live progress: the poll swaps the panel until the batch is done, then stops.
    expect(page.locator("#batch-percent")).to_have_text("100%", timeout=45_000)
    expect(page.locator("#batch-state")).to_have_text("Finished")
    thumbs = page.locator("#batch-thumbs img")
    expect(thumbs).to_have_count(24)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#batch-thumbs img')]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=15_000,
    )
    expect(page.locator("#batch-spend")).to_have_text("$0.36")
    shots.take("batch-finished")

    states = list(
        Generation.objects.filter(batch=batch).values_list("backend", "state")
    )
    assert len(states) == 24
    assert {s for _, s in states} == {GenerationState.SUCCEEDED}, worker.log_tail()
    assert sorted({b for b, _ in states}) == ["bfl", "preview"]
    assert Asset.objects.filter(generation__batch=batch).count() == 24
    assert fake.counts["submissions"] == 12
    # The polling stopped by itself: the panel no longer asks for updates.
    assert page.locator("#batch-progress[hx-trigger]").count() == 0
    assert problems == [], problems
    elapsed = time.monotonic() - started
    print(f"\nbatch e2e: 24 generations end to end in {elapsed:.1f} s")
    assert elapsed < 60, elapsed
