"""Exporting from the gallery's bulk bar in a real browser, built by a real Celery worker on the
"export" queue: select, Export, choose presets, watch the progress finish, download the pack.

Screenshots go to var/test-artifacts/export/.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from exports.models import ExportPack
from studio.models import Role
from tests.exports.helpers import approved_asset
from tests.factories import make_brand, make_campaign, make_member, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def export_worker(tmp_path: Path) -> Any:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": "",
        "STUDIO_TESTING": "1",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    log = (tmp_path / "worker.log").open("ab")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "studio", "worker", "-Q", "export",
         "-c", "1", "-l", "WARNING", "-n", f"export-{uuid.uuid4().hex[:6]}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_the_gallery_selection_is_exported_and_downloaded(
    live_server: Any, page: Any, artifacts_dir: Path, export_worker: Any
) -> None:
    workspace = make_workspace("Northwind")
    make_member(workspace, Role.EDITOR, "dana")
    brand = make_brand(workspace, name="Northwind Roasters")
    campaign = make_campaign(brand, name="Autumn Blend Launch")
    assets = [
        approved_asset(campaign, variables={"headline": h}, size=(1024, 1280))
        for h in ("Half price", "Two for one", "Free shipping")
    ]
    shots = artifacts_dir / "export"
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    base = live_server.url
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/campaigns/{campaign.code}/gallery/")
    for asset in assets[:2]:
        page.check(f"#asset-{asset.code} .asset-check")
    page.screenshot(path=str(shots / "01-gallery-selection.png"), full_page=True)
    page.click("#export-button")
    page.wait_for_selector("#export-form")
    page.uncheck("input[name=presets][value=email-header]")
    page.check("input[name=formats][value=webp]")
    page.screenshot(path=str(shots / "02-export-form.png"), full_page=True)
    page.click("#build-pack")
    page.wait_for_selector("#pack-status")
    page.wait_for_selector("#pack-download", timeout=60_000)
    page.screenshot(path=str(shots / "03-pack-ready.png"), full_page=True)
    pack = ExportPack.objects.get()
    assert pack.state == "succeeded" and pack.asset_count == 2
    assert page.inner_text("#pack-percent") == "100%"
    assert "Too small" in page.inner_text(
        "#pack-flagged"
    )  # the story preset from 1024 wide
    with page.expect_download() as info:
        page.click("#pack-download")
    data = Path(info.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        manifest = json.loads(zipped.read("manifest.json"))
    assert {r["asset_id"] for r in manifest["renditions"]} == {
        str(a.code) for a in assets[:2]
    }
    assert {r["format"] for r in manifest["renditions"]} == {"jpeg", "webp"}
    assert "email-header" not in {r["preset"] for r in manifest["renditions"]}
    page.goto(f"{base}/exports/")
    page.screenshot(path=str(shots / "04-exports-list.png"), full_page=True)
    assert "2 selected images" not in page.inner_text(
        "#pack-list"
    )  # titled by selection
    assert "Selection of 2 images" in page.inner_text("#pack-list")
    assert not errors, errors
