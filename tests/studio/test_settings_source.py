"""Where configuration comes from: the environment, read by the settings only, and a test run only
when it says so (STUDIO_TESTING=1), never guessed from what the process has imported."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

from tests.test_deploy_check import ROOT, production_env

PROBE = (
    "import pytest, django; django.setup(); from django.conf import settings as s; "
    "print(s.TESTING, s.SECURE_SSL_REDIRECT, s.PASSWORD_HASHERS[0].rsplit('.', 1)[1], "
    "s.FAL_KEY)"
)


def probe(env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_importing_pytest_does_not_make_a_test_run() -> None:
    # pytest is imported before the settings load: production defaults all the same.
    assert probe({**production_env(), "FAL_KEY": "fal-from-env"}) == [
        "False",
        "True",
        "PBKDF2PasswordHasher",
        "fal-from-env",
    ]


def test_studio_testing_1_is_a_test_run() -> None:
    env = {**production_env(), "STUDIO_TESTING": "1", "FAL_KEY": "k"}
    assert probe(env) == ["True", "False", "MD5PasswordHasher", "k"]


def test_the_suite_runs_with_test_settings_and_leaves_the_environment_alone() -> None:
    assert settings.TESTING
    assert "tests.settings" in sys.modules
    # Processes the tests start load the studio's own settings and say STUDIO_TESTING themselves.
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "studio.settings"
