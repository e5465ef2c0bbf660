"""The systemd units in deploy/systemd/ are valid, restart on failure, and run exactly the
commands the README's production section lists (issue 10: every process has a restart policy)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
EXPECTED = {
    "studio-web.service": "web",
    "studio-worker-io.service": "I/O worker",
    "studio-worker-cpu.service": "CPU worker",
    "studio-beat.service": "beat (exactly one)",
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def readme_commands() -> dict[str, tuple[str, str]]:
    """The production table: process -> (command, restart policy)."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\s*\| (.+?) \| `([^`]+)` \| (.+?) \|$", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    return rows


def test_every_process_has_a_unit_that_restarts_on_failure() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(EXPECTED)
    for name in EXPECTED:
        service = unit(name)["Service"]
        assert service["Restart"] == "on-failure", name
        assert service["ExecStart"].startswith("/srv/studio/.venv/bin/"), name


def test_the_units_run_the_readme_commands() -> None:
    table = readme_commands()
    for name, process in EXPECTED.items():
        command, policy = table[process]
        assert policy.startswith("on-failure"), process
        exec_start = unit(name)["Service"]["ExecStart"]
        # systemd writes a literal % as %%; the README shows the command as typed.
        as_typed = exec_start.removeprefix("/srv/studio/.venv/bin/").replace("%%", "%")
        assert as_typed.startswith(command), (name, as_typed, command)


def test_make_run_starts_the_same_worker_split() -> None:
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert '-A studio -q worker -Q dispatch -P threads -c "$IO_THREADS"' in script
    assert (
        '-A studio -q worker -Q celery,ingest,export -P prefork -c "$CPU_PROCS"'
        in script
    )
    assert "-A studio -q beat" in script


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # Point the units at this checkout (the executables must exist for verify to pass).
    env_file = tmp_path / "studio.env"
    env_file.write_text("DEBUG=0\n")
    for name in EXPECTED:
        text = (UNITS / name).read_text()
        text = text.replace("/srv/studio", str(ROOT)).replace(
            "/etc/studio/studio.env", str(env_file)
        )
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(str(tmp_path / n) for n in EXPECTED),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "studio-" in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
