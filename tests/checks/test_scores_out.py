"""The brand check's scores where they leave the studio: each rendition of an export pack
(manifest.json and manifest.csv) and the API's asset representation (and its `flag` filter).

The check is the real one (checks.services.asset_check_run on the stored file); one asset of two
is left unchecked, so both shapes are seen."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command

from checks.models import BrandCheckPolicy
from checks.services import asset_check_run
from tests.api.helpers import ApiClient, make_token
from tests.exports.helpers import approved_asset
from tests.factories import make_brand, make_campaign, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene() -> dict:
    workspace = make_workspace("Scores out")
    # Navy only: the test image (grey with a small red disc) holds none of it, so its palette
    # score is 0.8 (full adherence: the grey is neutral; no brand colour present), under this
    # brand's own minimum of 0.9.
    brand = make_brand(workspace, palette=[{"name": "Midnight", "hex": "#1A1A2E"}])
    BrandCheckPolicy.objects.create(
        brand=brand, **{**BrandCheckPolicy.defaults(), "palette_min": 0.9}
    )
    campaign = make_campaign(brand, name="Scores")
    checked = approved_asset(campaign, size=(1080, 1080))
    unchecked = approved_asset(campaign, size=(1080, 1080))
    check = asset_check_run(asset_id=checked.pk)
    assert check is not None and check.state == "done", check and check.error
    assert check.palette_score is not None and check.palette_score < 0.9
    return {
        "workspace": workspace,
        "campaign": campaign,
        "checked": checked,
        "unchecked": unchecked,
        "check": check,
    }


def test_every_rendition_in_the_manifests_carries_its_assets_scores(
    scene: dict, tmp_path: Path
) -> None:
    out = tmp_path / "pack.zip"
    call_command(
        "export_pack",
        "--workspace", scene["workspace"].slug,
        "--campaign", scene["campaign"].name,
        "--preset", "square", "story",
        "--format", "jpeg",
        "--out", str(out),
        stdout=io.StringIO(),
    )  # fmt: skip
    check = scene["check"]
    checked, unchecked = str(scene["checked"].code), str(scene["unchecked"].code)
    with zipfile.ZipFile(out) as pack:
        rows = json.loads(pack.read("manifest.json"))["renditions"]
        table = list(csv.DictReader(io.StringIO(pack.read("manifest.csv").decode())))
    assert len(rows) == 4 and len(table) == 4
    for row in rows:
        if row["asset_id"] == checked:
            assert row["brand_check"] == {
                "state": "done",
                "palette": check.palette_score,
                "text": None,  # the prompt quotes no text
                "logo": None,  # no logo was sent
                "product": None,
                "channels": check.channel_score,
                "flags": ["off-palette"],
                "needs_review": True,
            }
        else:
            assert row["asset_id"] == unchecked
            assert row["brand_check"]["state"] == "unchecked"
            assert row["brand_check"]["palette"] is None
    for line in table:
        if line["asset_id"] == checked:
            assert float(line["palette_score"]) == check.palette_score
            assert line["check_state"] == "done" and line["text_score"] == ""
            assert line["check_flags"] == "off-palette"
            assert line["needs_review"] == "True"
        else:
            assert line["check_state"] == "unchecked" and line["palette_score"] == ""


def test_the_api_shows_the_scores_and_filters_by_flag(scene: dict) -> None:
    viewer = ApiClient(make_token(scene["workspace"], "viewer"))
    check = scene["check"]
    checked, unchecked = str(scene["checked"].code), str(scene["unchecked"].code)

    one = viewer.get(f"/assets/{checked}")
    assert one.status_code == 200, one.content
    assert one.json()["brand_check"]["palette"] == check.palette_score
    assert one.json()["brand_check"]["flags"] == ["off-palette"]
    other = viewer.get(f"/assets/{unchecked}").json()["brand_check"]
    assert other["state"] == "unchecked" and other["needs_review"] is False

    listed = viewer.get("/assets", campaign=str(scene["campaign"].code)).json()
    by_id = {item["id"]: item["brand_check"] for item in listed["items"]}
    assert (
        by_id[checked]["state"] == "done" and by_id[unchecked]["state"] == "unchecked"
    )

    flagged = viewer.get("/assets", flag="off-palette").json()["items"]
    assert [item["id"] for item in flagged] == [checked]
    assert viewer.get("/assets", flag="text-mismatch").json()["items"] == []
    bad = viewer.get("/assets", flag="blurry")
    assert bad.status_code == 422 and "needs-review" in bad.json()["detail"]
