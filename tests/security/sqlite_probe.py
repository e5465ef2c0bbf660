"""Runs on SQLite (the `make run` default) in its own process: migrate, then the gallery's
"Variable value" and "Reference used" filters and the NUL rule, printing one JSON report.

Started by test_sqlite.py with DATABASE_URL=sqlite:///...; not a test module itself.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402


def main() -> None:
    assert connection.vendor == "sqlite", connection.vendor
    setup_test_environment()  # the test client's response.context and the locmem mail box
    settings.ALLOWED_HOSTS = ["testserver"]
    # As the suite's conftest does: no collectstatic manifest in a test run.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    call_command("migrate", verbosity=0)
    from studio.models import Role
    from tests.factories import (
        make_asset,
        make_brand,
        make_campaign,
        make_member,
        make_workspace,
    )

    workspace = make_workspace("Acme")
    bob = make_member(workspace, Role.VIEWER, "bob")
    eddie = make_member(workspace, Role.EDITOR, "eddie")
    brand = make_brand(workspace, name="Acme Coffee")
    campaign = make_campaign(brand, name="Autumn")
    ref = "11111111-2222-3333-4444-555555555555"
    a = make_asset(
        campaign,
        variables={"headline": "Half price", "product": "bag"},
        references=[{"code": ref, "role": "product"}],
    )
    b = make_asset(campaign, variables={"headline": "Two for one", "product": "bag"})
    c = make_asset(
        campaign,
        variables={"headline": "Half price", "product": "shoe"},
        references=[
            {"role": "product", "code": "99999999-2222-3333-4444-555555555555"}
        ],
    )
    names = {str(x.code): n for n, x in (("a", a), ("b", b), ("c", c))}

    client = Client()
    client.force_login(bob)
    url = reverse("generation:campaign-gallery", args=[campaign.code])
    report: dict[str, object] = {"vendor": connection.vendor}

    def shown(query: str) -> object:
        r = client.get(url + query)
        if r.status_code != 200:
            return r.status_code
        page = r.context["page"]
        return sorted(names[str(x.code)] for x in page.assets)

    report["var_half_price"] = shown("?var=headline%3DHalf+price")
    report["var_two_filters"] = shown("?var=headline%3DHalf+price&var=product%3Dshoe")
    report["ref"] = shown(f"?ref={ref}")
    report["ref_upper"] = shown(f"?ref={ref.upper()}")
    r = client.get(url + "?var=headline%3DHalf%00price")
    report["var_nul"] = [r.status_code, "NUL character" in r.content.decode()]

    client.force_login(eddie)
    r = client.post(
        reverse("generation:asset-tags", args=[a.code]),
        {"add": "hero\x00"},
        follow=True,
    )
    report["tag_nul"] = [
        r.status_code,
        "NUL character" in r.content.decode(),
        a.tags.count(),
    ]
    r = client.post(
        "/brands/new/",
        {
            "name": "Northwind",
            "palette_name": ["Roast\x00"],
            "palette_hex": ["#4a2c2a"],
        },
    )
    report["palette_nul"] = [r.status_code, "NUL character" in r.content.decode()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
