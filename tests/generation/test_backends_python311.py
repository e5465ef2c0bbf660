"""generation/backends stays Python 3.11 code: tests/ml runs the diffusers backend in .venv-ml, a
Python 3.11 (the CPU torch wheel is 3.11 only: scripts/ml-tests.sh). Checked here, in the main
suite, so a 3.12-only line is caught without the ML venv (issue 11: the ML glue tests used to skip
silently when the package stopped being 3.11 syntax).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import unittest
from pathlib import Path

from django.test import SimpleTestCase

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = sorted((ROOT / "generation" / "backends").rglob("*.py"))
# What tests/ml imports (tests/ml/test_backend_glue.py, test_diffusers_pipeline.py): the studio
# modules that run inside .venv-ml, which has no Django, httpx or the other studio dependencies.
GLUE = [
    "generation.backends.base",
    "generation.backends.diffusers",
    "generation.backends.diffusers_pipeline",
]


def python311() -> str | None:
    """A CPython 3.11, searched as scripts/ml-tests.sh does ($STUDIO_ML_PYTHON, python3.11,
    pyenv's 3.11 versions), or None."""
    candidates = [os.environ.get("STUDIO_ML_PYTHON", ""), "python3.11"]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p / "bin" / "python3") for p in sorted(pyenv.glob("3.11*"))]
    for candidate in filter(None, candidates):
        path = shutil.which(candidate)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return path
    return None


PYTHON311 = python311()


def run311(*args: str) -> subprocess.CompletedProcess[str]:
    assert PYTHON311 is not None
    return subprocess.run(
        # -E -s: no PYTHON* variables, no user site: only the standard library and, through
        # the working directory below (-c puts it first on sys.path), the repository.
        [PYTHON311, "-E", "-s", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


class Python311Tests(SimpleTestCase):
    def test_the_backends_package_is_python_311_grammar(self) -> None:
        self.assertGreater(len(BACKENDS), 10)
        if PYTHON311 is not None:
            # The real 3.11 compiler (ast's feature_version misses 3.12's f-string grammar).
            # compile() only: no __pycache__ written into the tree.
            result = run311(
                "-c",
                "import sys\n"
                "bad = []\n"
                "for path in sys.argv[1:]:\n"
                "    try:\n"
                "        compile(open(path, 'rb').read(), path, 'exec')\n"
                "    except SyntaxError as exc:\n"
                "        bad.append(f'{path}:{exc.lineno}: {exc.msg}')\n"
                "sys.exit('\\n'.join(bad) or None)\n",
                *map(str, BACKENDS),
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            return
        # No 3.11 here: the grammar check this interpreter can do (type statements, type
        # parameter lists, except* forms... not 3.12's nested f-string quotes).
        for path in BACKENDS:
            with self.subTest(str(path.relative_to(ROOT))):
                ast.parse(path.read_bytes(), str(path), feature_version=(3, 11))

    @unittest.skipIf(
        PYTHON311 is None and not os.environ.get("CI"),
        "no Python 3.11 here (on CI, which runs tests/ml, this is an error)",
    )
    def test_the_ml_glue_imports_under_python_311_with_the_standard_library_only(
        self,
    ) -> None:
        self.assertIsNotNone(PYTHON311, "CI needs a Python 3.11 for tests/ml")
        result = run311("-c", "import " + ", ".join(GLUE))
        self.assertEqual(result.returncode, 0, result.stderr)
