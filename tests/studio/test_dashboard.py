"""The Grafana dashboard in deploy/grafana queries only metric families the studio exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from studio.metrics import exposition, families

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "flux-studio.json"
)


@pytest.mark.django_db
def test_every_dashboard_query_uses_an_exported_family() -> None:
    exported = {
        f for f in families(exposition()[0].decode()) if f.startswith("studio_")
    }
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = set()
    for panel in panels:
        for target in panel["targets"]:
            for name in re.findall(r"studio_[a-z_]+", target["expr"]):
                used.add(re.sub(r"_(bucket|count|sum)$", "", name))
    assert used, "the dashboard queries nothing"
    assert used <= exported, used - exported
    # Every family the issue asks for is on the dashboard.
    assert exported - used == set(), exported - used
