"""The suite green against the correct emulated card (in process and through pcscd), and what
its report holds: verdicts per requirement, the catalogue check, traces, digests, allure."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from mynahil.conformance import load_catalogue
from mynahil.conformance.cli import run_target
from mynahil.conformance.recording import read_trace
from tests.support import MYNAHIL, PASSWORD, PIN, mynahil

from .conftest import SCENARIOS, Run

CARD_IDS = {r.id for r in load_catalogue().values() if r.suite == "card"}


def test_the_correct_emulated_card_passes_every_card_requirement(inproc_run: Run) -> None:
    code, results, _report = inproc_run
    assert code == 0
    assert results["passed"] is True
    assert set(results["requirements"]) == CARD_IDS
    assert {v["verdict"] for v in results["requirements"].values()} == {"passed"}
    assert results["catalogue"] == {
        "verdict": "passed", "untested": [], "planned": [], "selected": len(CARD_IDS),
    }  # fmt: skip
    assert results["atr"] == "3BE000FF8131FE4514"
    assert results["destructive"] == "run"


def test_the_report_is_self_contained_and_digests_match(inproc_run: Run) -> None:
    _code, results, report = inproc_run
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "SELF-TEST PASSED" in html  # our own emulated card: never "CERTIFIED"
    assert "CERTIFIED" not in html
    assert "<script" not in html
    assert "stylesheet" not in html  # inline CSS only
    for rid in CARD_IDS:
        assert rid in html
    digest = hashlib.sha256((report / "results.json").read_bytes()).hexdigest()
    assert digest in html
    for trace in results["traces"].values():
        path = report / trace["file"]  # relative to the report, and linked from it
        assert f'href="{trace["file"]}"' in html
        assert hashlib.sha256(path.read_bytes()).hexdigest() == trace["sha256"]
        assert trace["sha256"] in html


def test_every_apdu_is_traced_as_json_lines(inproc_run: Run) -> None:
    _code, _results, report = inproc_run
    entries = read_trace(report / "traces" / "test_third_wrong_pin_blocks_for_good.jsonl")
    commands = [e for e in entries if e.get("command")]
    assert {"test", "t_ms", "command", "response", "sw"} <= set(commands[0])
    assert [e["sw"] for e in commands if e["command"].startswith("00200080")][-3:] == [
        "6984", "6984", "6984",
    ]  # fmt: skip
    assert any(e.get("event") == "reset" for e in entries), "the power cycle is in the trace"


def test_allure_results_carry_requirement_suite_and_device(inproc_run: Run) -> None:
    _code, _results, report = inproc_run
    files = list((report / "allure-results").glob("*-result.json"))
    assert files
    labels = [
        {(label["name"], label["value"]) for label in json.loads(f.read_text())["labels"]}
        for f in files
    ]
    assert all(("suite", "card") in found for found in labels)
    assert all(any(name == "requirement" for name, _v in found) for found in labels)
    assert any(("requirement", "JPKI-PIN-003") in found for found in labels)
    assert all(("device", "mynahil emulated card, contact") in found for found in labels)


def test_a_defective_card_is_not_certified(defect_run: Run) -> None:
    code, results, report = defect_run
    assert code != 0
    assert results["passed"] is False
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "failed"
    assert results["requirements"]["JPKI-SEL-001"]["verdict"] == "passed"
    assert "SELF-TEST FAILED" in (report / "index.html").read_text(encoding="utf-8")


def test_a_contactless_device_profile(tmp_path: Path) -> None:
    profile = SCENARIOS / "devices" / "emulated-nfc-phone.toml"
    code, results = run_target("card:inproc", tmp_path, device_profile=profile,
                               extra=["-k", "atr or budget or phone"])  # fmt: skip
    assert results["atr"].startswith("3B888001")
    assert results["requirements"]["JPKI-ATR-001"]["verdict"] == "passed"
    assert results["requirements"]["JPKI-TIME-001"]["verdict"] == "passed"
    assert results["device_profile"]["budget_ms"] == 5000
    # a -k selection's verdict covers only what it selected, and says so (issue 20.7)
    assert code == 0
    assert results["selection"]["partial"] is True
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "not selected"


@pytest.mark.pcsc
def test_the_suite_passes_through_pcscd(tmp_path: Path, pcsc_stack: None) -> None:
    code, results = run_target("card:vpcd", tmp_path)
    assert code == 0, {k: v for k, v in results["requirements"].items() if v["verdict"] != "passed"}
    assert results["passed"] is True
    assert results["reader"].startswith("vpcd:")
    assert set(results["requirements"]) == CARD_IDS


@pytest.mark.pcsc
def test_a_reader_vendors_run_as_the_readme_shows(tmp_path: Path, pcsc_stack: None) -> None:
    """`card attach` puts a card in pcscd's virtual reader; `conformance run --target pcsc:…`
    then certifies it as it would a real reader and card: the PIN given, destructive tests
    skipped, nothing treated as emulated."""
    card = tmp_path / "card.json"
    assert mynahil("card", "new", "--out", str(card)).returncode == 0
    attach = [*MYNAHIL, "card", "attach", "--card", str(card), "--vpcd", "127.0.0.1:35963"]
    holder = subprocess.Popen(attach, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert holder.stdout is not None
        assert "inserted" in holder.stdout.readline()
        done = mynahil("conformance", "run", "--target", "pcsc:Virtual PCD 00 00",
                       "--pin", PIN, "--sign-password", PASSWORD,
                       "--report", str(tmp_path / "report"))  # fmt: skip
    finally:
        holder.terminate()
        holder.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["emulated"] is False
    assert results["reader"] == "pcsc:Virtual PCD 00 00"
    skipped = {r for r, v in results["requirements"].items() if v["verdict"] == "skipped"}
    assert "SPEC-CARD-001" in skipped  # locking the PIN is destructive: never on a real card
    assert {v["verdict"] for v in results["requirements"].values()} == {"passed", "skipped"}


_STRAY_PLUGIN = """
import os


def pytest_configure(config):
    open(os.environ["STRAY_PLUGIN_MARK"], "w").close()


def pytest_collection_modifyitems(items):
    items.reverse()  # as pytest-randomly would shuffle them: the PIN lockout first
"""


def test_a_vendors_installed_pytest_plugins_stay_out_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run loads only its own plugins, not every plugin installed beside it (a vendor's
    environment): one that reorders tests would run the PIN lockout before the tests that
    need the PIN. One the vendor asks for after ``--`` (``-p NAME``) is loaded."""
    site = tmp_path / "site"
    (site / "stray_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "stray_plugin.py").write_text(_STRAY_PLUGIN, encoding="utf-8")
    (site / "stray_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stray-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (site / "stray_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[pytest11]\nstray = stray_plugin\n", encoding="utf-8"
    )
    mark = tmp_path / "loaded"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("STRAY_PLUGIN_MARK", str(mark))

    code, results = run_target("card:inproc", tmp_path / "report", extra=["-k", "ATR or PIN"])
    assert not mark.exists(), "an installed pytest plugin was loaded into the run"
    assert code == 0, results["requirements"]
    assert results["passed"] is True

    run_target("card:inproc", tmp_path / "asked", extra=["-p", "stray_plugin", "-k", "ATR-001"])
    assert mark.exists(), "the plugin asked for with -p was not loaded"
