"""Shared pytest configuration.

The suite runs on PostgreSQL and Redis (`scripts/test.sh` provides them); media goes to a
temporary folder per test session. Browser tests drive Debian's Chromium through Playwright.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio loop in the test thread; the ORM would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(
    os.environ.get(
        "STUDIO_TEST_ARTIFACTS",
        Path(__file__).resolve().parent.parent / "var" / "test-artifacts",
    )
)


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # A DJANGO_SETTINGS_MODULE in the environment wins over pyproject's tests.settings: without
    # STUDIO_TESTING=1 the suite would run with production defaults (HTTPS redirects, SMTP).
    if not settings.TESTING:
        raise pytest.UsageError(
            "The tests need test settings: unset DJANGO_SETTINGS_MODULE (pyproject.toml names "
            "tests.settings) or set STUDIO_TESTING=1."
        )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session", autouse=True)
def _media_root() -> object:
    from django.conf import settings

    root = tempfile.mkdtemp(prefix="studio-media-")
    settings.MEDIA_ROOT = root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings: object) -> None:
    # live_server serves /static/ through the finders, which know no manifest-hashed names.
    settings.STORAGES = {  # type: ignore[attr-defined]
        **settings.STORAGES,  # type: ignore[attr-defined]
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    # On CI nothing may be skipped silently: a missing Chromium is an error there.
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        skip = pytest.mark.skip(
            reason=f"{CHROMIUM} is missing: apt-get install -y chromium"
        )
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)
