"""Fixtures for testing the conformance suite itself: one run per target, shared by the tests
that read its report, and the PC/SC stack (a failure, not a skip, when CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mynahil.conformance.cli import run_target

Run = tuple[int, dict[str, Any], Path]
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="session")
def inproc_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole card suite against the correct emulated card, in process."""
    report = tmp_path_factory.mktemp("inproc")
    code, results = run_target("card:inproc", report)
    return code, results, report


@pytest.fixture(scope="session")
def defect_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The card suite against a card that answers 63C0 instead of 6984 once blocked."""
    report = tmp_path_factory.mktemp("defect")
    code, results = run_target("card:defect:sw_63c0_after_lockout", report)
    return code, results, report


def run_pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest with the plugin on a folder of its own (no project ini); run from that folder,
    the scenario data is found through MYNAHIL_SCENARIOS."""
    env = {**os.environ, "MYNAHIL_SCENARIOS": str(SCENARIOS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-p", "mynahil.conformance.plugin",
         "-p", "no:cacheprovider", "-q", "--rootdir", str(folder), "-c", os.devnull, *args],
        capture_output=True, text=True, check=False, cwd=folder, env=env,
    )  # fmt: skip
