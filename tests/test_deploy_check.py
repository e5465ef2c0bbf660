"""`manage.py check --deploy` is clean under production settings.

Runs in a subprocess, because the test process has DEBUG off and TESTING on (tests/settings.py), which keeps
the development security defaults; the subprocess sees exactly what a production server sees.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Variables that would change what the check sees (conftest sets DJANGO_ALLOW_ASYNC_UNSAFE for
# Playwright); the production environment below sets its own.
_CLEARED = (
    "DEBUG",
    "STUDIO_TESTING",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
)


def production_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _CLEARED
        and not key.startswith(("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_"))
    }
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),  # 86 characters, random
            "ALLOWED_HOSTS": "studio.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
            "DJANGO_SETTINGS_MODULE": "studio.settings",
        }
    )
    # The database of this test run (PostgreSQL under scripts/test.sh), as in production.
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return env


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output and "?: (security." not in output, output


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    env = production_env()
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
