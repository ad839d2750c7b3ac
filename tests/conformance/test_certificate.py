"""The report as a certificate (issue 20.4): each failure's reason in its requirement's row,
measurements with value, limit and unit, tool version, catalogue digest, the device's identity,
relative linked traces, self-tests labelled as such, allure's environment and attachments,
and the requirement per test in JUnit XML."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mynahil import __version__
from mynahil.conformance.catalogue import CATALOGUE
from mynahil.conformance.cli import run_target
from tests.support import mynahil

from .conftest import SCENARIOS, Run


def test_a_failure_shows_its_reason_not_a_traceback(defect_run: Run) -> None:
    _code, results, report = defect_run
    failures = results["requirements"]["JPKI-PIN-003"]["failures"]
    assert failures == [
        {"test": "test_third_wrong_pin_blocks_for_good",
         "reason": "after lockout even the right PIN is 6984"},
    ]  # fmt: skip
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "after lockout even the right PIN is 6984</span>" in html


def test_the_report_names_tool_catalogue_and_self_test(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    assert results["tool"] == {"name": "mynahil", "version": __version__}
    assert results["catalogue_sha256"] == hashlib.sha256(CATALOGUE.read_bytes()).hexdigest()
    assert results["self_test"] is True
    html = (report / "index.html").read_text(encoding="utf-8")
    assert results["catalogue_sha256"] in html
    assert f"mynahil {__version__}" in html


def test_time_budgets_are_measurements(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    (measurement,) = results["requirements"]["JPKI-TIME-001"]["measurements"]
    assert measurement["unit"] == "ms"
    assert measurement["limit"] == results["device_profile"]["budget_ms"] == 1000
    assert 0 < measurement["value"] <= measurement["limit"]
    assert measurement["passed"] is True
    html = (report / "index.html").read_text(encoding="utf-8")
    assert f"{measurement['value']:,.0f} ms of 1,000 ms" in html


def test_device_identity_junit_and_allure_environment(tmp_path: Path) -> None:
    profile = tmp_path / "reader.toml"
    base = (SCENARIOS / "devices" / "emulated-contact.toml").read_text(encoding="utf-8")
    profile.write_text(
        base + 'vendor = "ACME"\nmodel = "R2"\nserial = "SN-0042"\nfirmware = "1.4.2"\n'
        'lab = "Lab Kanda"\noperator = "H. Sato"\n', encoding="utf-8",
    )  # fmt: skip
    junit = tmp_path / "junit.xml"
    report = tmp_path / "report"
    extra = ["-k", "atr_is_the_expected", "--junitxml", str(junit)]
    _code, results = run_target("card:inproc", report, device_profile=profile, extra=extra)
    assert results["identity"] == {
        "vendor": "ACME", "model": "R2", "serial": "SN-0042", "firmware": "1.4.2",
        "lab": "Lab Kanda", "operator": "H. Sato",
    }  # fmt: skip
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "SN-0042" in html
    cases = ET.parse(junit).getroot().iter("testcase")
    properties = {(p.get("name"), p.get("value")) for c in cases for p in c.iter("property")}
    assert ("requirement", "JPKI-ATR-001") in properties
    environment = (report / "allure-results" / "environment.properties").read_text("utf-8")
    assert "device.serial=SN-0042" in environment
    assert f"catalogue.sha256={results['catalogue_sha256']}" in environment
    attachments = [
        a for f in (report / "allure-results").glob("*-container.json")
        for a in json.loads(f.read_text()).get("afters", [{}])[0].get("attachments", [])
    ]  # fmt: skip
    assert any(a["name"] == "APDU trace" for a in attachments), "the trace is attached"


def test_allure_keeps_every_parametrized_test_apart(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    found = [json.loads(f.read_text()) for f in (report / "allure-results").glob("*-result.json")]
    assert len({r["historyId"] for r in found}) == len(results["tests"])
    aids = [p["value"] for r in found if r["name"].startswith("test_the_other_applications")
            for p in r["parameters"] if p["name"] == "aid"]  # fmt: skip
    assert sorted(aids) == sorted(
        repr(f"AID.{n}") for n in ("CARD_INFO", "CARD_FACE", "RESIDENT_REGISTRY", "COMMON")
    )


def test_the_run_prints_each_failures_reason(tmp_path: Path) -> None:
    done = mynahil("conformance", "run", "--target", "card:defect:sw_63c0_after_lockout",
                   "--report", str(tmp_path), "--", "-k", "JPKI-PIN-003")  # fmt: skip
    assert done.returncode == 1
    assert "FAILED    JPKI-PIN-003" in done.stderr
    assert (
        "test_third_wrong_pin_blocks_for_good: after lockout even the right PIN is 6984"
        in done.stderr
    )
