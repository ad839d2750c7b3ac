"""The suite as a normal pytest plugin (issue 20.7): ``pytest --pyargs mynahil.conformance.suites``
from anywhere, requirement IDs as ``-k`` keywords, a selection's verdict covering only what it
selected, JUnit XML naming the requirement per test, extra pytest arguments through
``mynahil conformance run … --``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support import mynahil

from .conftest import SCENARIOS


def test_pytest_pyargs_with_a_requirement_id_selects_it(tmp_path: Path) -> None:
    report, junit = tmp_path / "report", tmp_path / "junit.xml"
    env = {**os.environ, "MYNAHIL_SCENARIOS": str(SCENARIOS)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "mynahil.conformance.suites",
         "-p", "no:cacheprovider",
         "--conformance-target", "card:inproc", "--conformance-report", str(report),
         "-k", "JPKI-PIN-001 or JPKI-SEL-005", "--junitxml", str(junit), "-q"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((report / "results.json").read_text(encoding="utf-8"))
    verdicts = {r: v["verdict"] for r, v in results["requirements"].items()}
    assert verdicts.pop("JPKI-PIN-001") == "passed"
    assert verdicts.pop("JPKI-SEL-005") == "passed"
    assert set(verdicts.values()) == {"not selected"}
    assert results["passed"] is True
    assert results["selection"]["partial"] is True
    assert results["selection"]["selected"] == 2
    assert "selection only: 2 of" in results["verdict_label"]
    assert "CERTIFIED" not in results["verdict_label"]
    assert "selection only" in done.stdout
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) == 1 + 5  # PIN-001 and SEL-005's five logical channels
    for case in cases:
        names = {(p.get("name"), p.get("value")) for p in case.iter("property")}
        assert names & {("requirement", "JPKI-PIN-001"), ("requirement", "JPKI-SEL-005")}


def test_conformance_run_passes_pytest_arguments_through(tmp_path: Path) -> None:
    done = mynahil("conformance", "run", "--target", "card:inproc", "--report", str(tmp_path),
                   "--", "-k", "JPKI-ATR-001")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["requirements"]["JPKI-ATR-001"]["verdict"] == "passed"
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "not selected"
    assert "SELF-TEST PASSED (selection only" in done.stdout
