"""The settings the test suite runs with: the studio's own, with STUDIO_TESTING=1 set explicitly.

pytest-django imports this module (pyproject.toml: DJANGO_SETTINGS_MODULE) before any conftest
runs, so this is where the suite says it is a test run; studio/settings.py no longer guesses that
from `"pytest" in sys.modules`. The environment is put back afterwards: processes the tests start
(workers, `manage.py`, scripts) load studio.settings and say STUDIO_TESTING=1 themselves where they
want test settings, as tests/test_deploy_check.py and tests/test_prod_topology.py want production.
"""

from __future__ import annotations

import os

_before = os.environ.get("STUDIO_TESTING")
os.environ["STUDIO_TESTING"] = "1"
try:
    from studio.settings import *  # noqa: F403
finally:
    if _before is None:
        del os.environ["STUDIO_TESTING"]
    else:
        os.environ["STUDIO_TESTING"] = _before
    os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
