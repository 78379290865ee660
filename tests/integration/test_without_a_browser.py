"""A machine without Chromium (issue 16 item 5): `uv run pytest` passes there, the
browser tests skipped with a loud reason, and where CI asks for them
(PARLEY_REQUIRE_BROWSER=1, as `.ci/run` sets) their absence fails the run instead.
Run as pytest runs them: a pytest subprocess over tests/browser, Chromium pointed
at a path where there is none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_browser_tests(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PARLEY_REQUIRE_BROWSER"}
    environment.update(PARLEY_CHROMIUM=str(tmp_path / "no-chromium-here"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/browser", "-rs", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'run'}"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_without_chromium_the_browser_tests_are_skipped_loudly(tmp_path: Path) -> None:
    run = run_browser_tests(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped" in run.stdout and "passed" not in run.stdout and "error" not in run.stdout.lower(), run.stdout
    assert "BROWSER TESTS NOT RUN: no Chromium at" in run.stdout, run.stdout


def test_where_a_browser_is_required_its_absence_fails(tmp_path: Path) -> None:
    run = run_browser_tests(tmp_path, PARLEY_REQUIRE_BROWSER="1")
    assert run.returncode != 0, run.stdout
    assert "skipped" not in run.stdout, run.stdout
