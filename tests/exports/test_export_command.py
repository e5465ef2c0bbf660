"""`manage.py export_pack`: codes as people copy them, exit codes, the one-line summary, and the
pack itself (layout, manifest checksums and sizes, provenance read back with exiftool)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from hashlib import sha256
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from PIL import Image

from tests.exports.helpers import approved_asset, has_exiftool
from tests.factories import make_brand, make_campaign, make_template, make_workspace

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scene() -> dict:
    workspace = make_workspace("Northwind")
    brand = make_brand(workspace, name="Northwind Roasters", default_formats=[])
    campaign = make_campaign(brand, name="Autumn Blend Launch")
    template = make_template(brand, name="Social card")
    version = template.versions.get()
    assets = [
        approved_asset(
            campaign,
            template_version=version,
            variables={"headline": f"Half price {i}"},
            focal=(0.3, 0.2) if i == 0 else None,
        )
        for i in range(3)
    ]
    pending = approved_asset(campaign, review_status="pending")
    return {
        "workspace": workspace,
        "campaign": campaign,
        "assets": assets,
        "pending": pending,
    }


def _export(tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "pack.zip"
    stdout = io.StringIO()
    call_command("export_pack", *args, "--out", str(out), stdout=stdout)
    return out, stdout.getvalue()


def test_a_campaign_exports_its_approved_images_to_each_preset_and_format(
    scene: dict, tmp_path: Path
) -> None:
    out, summary = _export(
        tmp_path,
        "--workspace", scene["workspace"].slug,
        "--campaign", scene["campaign"].name,
        "--preset", "square", "story", "1600x500",
        "--format", "jpeg", "webp",
    )  # fmt: skip
    assert summary.count("\n") == 1 and summary.startswith(
        "Exported 3 images × 3 presets"
    )
    assert "= 18 files" in summary and "flagged too small" in summary
    with zipfile.ZipFile(out) as pack:
        names = set(pack.namelist())
        manifest = json.loads(pack.read("manifest.json"))
        assert {"manifest.json", "manifest.csv", "README.txt"} <= names
        rows = manifest["renditions"]
        assert len(rows) == 18 and len(names) == 21
        for row in rows:
            data = pack.read(row["file"])
            assert (
                sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
            )
            image = Image.open(io.BytesIO(data))
            assert image.size == (row["width"], row["height"])
            assert image.format.lower() == row["format"]
            assert row["file"].startswith(f"{row['preset']}/")
            assert row["file"].rsplit(".", 1)[0].endswith(row["short_id"])
            assert row["asset_id"].replace("-", "").startswith(row["short_id"])
        codes = {str(a.code) for a in scene["assets"]}
        assert {r["asset_id"] for r in rows} == codes  # the pending one stays out
        square = next(r for r in rows if r["preset"] == "instagram-square")
        assert (square["width"], square["height"]) == (1080, 1080)
        assert "autumn-blend-launch_social-card_half-price-" in square["file"]
        # 1024 wide → a 9:16 crop is 720×1280: 1.5× needed > the 1.25× limit: flagged, smaller.
        story = [r for r in rows if r["preset"] == "instagram-story"]
        assert all(r["too_small"] and r["width"] == 900 for r in story)
        # 1600x500 from 1024 wide needs 1.56×: flagged as well; the square (1.05×) is not.
        assert {f["preset"] for f in manifest["flagged"]} == {
            "instagram-story",
            "1600x500",
        }
        assert "TOO SMALL" in pack.read("README.txt").decode()
        assert "half-price" in pack.read("manifest.csv").decode()
        first = next(r for r in rows if r["focal_x"] == 0.3)
        assert first["prompt"] and first["model"] == "flux-2-pro"
        # Provenance, read back with an independent reader.
        if has_exiftool():
            for row in rows[:4]:
                path = tmp_path / Path(row["file"]).name
                path.write_bytes(pack.read(row["file"]))
                tags = json.loads(
                    subprocess.check_output(
                        ["exiftool", "-j", "-XMP:all", str(path)], text=True
                    )
                )[0]
                assert tags["DigitalSourceType"].endswith("trainedAlgorithmicMedia")
                assert "flux-2-pro" in tags["AISystemUsed"]
                assert tags["Description"] == first["prompt"]


def test_assets_are_found_by_short_id_full_code_and_download_name(
    scene: dict, tmp_path: Path
) -> None:
    a, b, c = scene["assets"]
    out, summary = _export(
        tmp_path,
        "--workspace", scene["workspace"].slug,
        "--asset", str(a.code)[:8], str(b.code), f"{c.generation.code}.png",
        "--preset", "square",
    )  # fmt: skip
    assert summary.startswith("Exported 3 images × 1 preset (instagram-square) × jpeg")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--workspace", "nope", "--campaign", "x"], "No workspace 'nope'"),
        (["--campaign", "no such campaign"], "No campaign 'no such campaign'"),
        (["--campaign", "Autumn Blend Launch", "--preset", "poster"], "Unknown preset"),
        (["--campaign", "Autumn Blend Launch", "--format", "gif"], "Unknown format"),
    ],
)
def test_a_bad_request_fails_with_a_one_line_reason(
    scene: dict, tmp_path: Path, args: list[str], reason: str
) -> None:
    if "--workspace" not in args:
        args = ["--workspace", scene["workspace"].slug, *args]
    with pytest.raises(CommandError) as caught:
        _export(tmp_path, *args)
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "pack.zip").exists()


def test_nothing_approved_is_an_error_unless_all_statuses(
    scene: dict, tmp_path: Path
) -> None:
    pending = scene["pending"]
    args = ["--workspace", scene["workspace"].slug, "--asset", str(pending.code)]
    with pytest.raises(CommandError, match="no approved images"):
        _export(tmp_path, *args)
    _, summary = _export(tmp_path, *args, "--all-statuses", "--preset", "square")
    assert summary.startswith("Exported 1 image × 1 preset")


@pytest.mark.django_db(transaction=True)
def test_the_real_command_exits_0_with_a_summary_and_1_with_a_reason(
    scene: dict, tmp_path: Path
) -> None:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DEBUG": "1",
    }
    base = [
        sys.executable,
        "manage.py",
        "export_pack",
        "--workspace",
        scene["workspace"].slug,
    ]
    ok = subprocess.run(
        [*base, "--batch", "feedbeef", "--out", str(tmp_path / "x.zip")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 1
    assert ok.stderr.strip().splitlines() == [
        "CommandError: No batch 'feedbeef' in this workspace."
    ]
    done = subprocess.run(
        [*base, "--campaign", str(scene["campaign"].code)[:8], "--preset", "square",
         "--out", str(tmp_path / "p.zip")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert done.stdout.startswith("Exported 3 images × 1 preset")
    assert zipfile.ZipFile(tmp_path / "p.zip").testzip() is None
