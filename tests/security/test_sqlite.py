"""Issue 9, items 3 and 5 on SQLite, the database `make run` uses by default.

The suite itself runs on PostgreSQL, so this starts a separate process with DATABASE_URL pointing
at a fresh SQLite file (sqlite_probe.py): it migrates, then runs the gallery's "Variable value"
and "Reference used" filters (a 500 there before: "contains lookup is not supported on this
database backend") and the NUL rule through the real views.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gallery_filters_and_nul_rule_on_sqlite(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'studio.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "STUDIO_TESTING": "1",
        "STUDIO_DATA_DIR": str(tmp_path),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOG_LEVEL": "ERROR",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "security" / "sqlite_probe.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["vendor"] == "sqlite"
    assert report["var_half_price"] == ["a", "c"]
    assert report["var_two_filters"] == ["c"]
    assert report["ref"] == ["a"]
    assert report["ref_upper"] == ["a"]  # the form normalises a UUID before the lookup
    assert report["var_nul"] == [400, True]
    assert report["tag_nul"] == [200, True, 0]
    assert report["palette_nul"] == [200, True]
