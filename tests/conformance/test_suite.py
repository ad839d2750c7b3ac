"""The conformance suite itself: green on the correct emulated card, every defect caught under
its requirement, the catalogue check, device profiles, replay, and a plugin that stays out of
the way of ordinary pytest runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conformance import DEFECTS, TargetError, load_catalogue, parse_target
from conformance.cli import app, run_target
from conformance.operator_harness import OPERATOR_DEFECTS
from conformance.targets import DeviceProfile
from tests.support import MYNAHIL, free_port, running

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_the_correct_emulated_card_passes_every_requirement(tmp_path: Path) -> None:
    code, results = run_target("card:inproc", tmp_path)
    assert code == 0
    assert results["passed"] is True
    requirements = results["requirements"]
    assert isinstance(requirements, dict)
    card_ids = {r.id for r in load_catalogue().values() if r.suite == "card"}
    assert set(requirements) == card_ids
    assert {v["verdict"] for v in requirements.values()} == {"passed"}
    html = (tmp_path / "index.html").read_text()
    assert "CERTIFIED" in html
    assert "JPKI-PIN-003" in html
    assert any((tmp_path / "traces").glob("*.jsonl"))
    assert any((tmp_path / "allure-results").glob("*-result.json"))


@pytest.mark.slow
def test_the_defect_matrix_catches_every_defect_under_its_requirement(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["defects", "--report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "defects.json").read_text())
    assert summary["detection_rate"] == 1.0
    assert len([r for r in summary["rows"] if "failed" in r]) == len(DEFECTS) + len(
        OPERATOR_DEFECTS
    )


def test_the_sample_operator_passes_the_operator_suite(tmp_path: Path) -> None:
    code, results = run_target("operator:sample", tmp_path)
    assert code == 0
    requirements = results["requirements"]
    assert isinstance(requirements, dict)
    assert set(requirements) == {r.id for r in load_catalogue().values() if r.suite == "operator"}
    assert {v["verdict"] for v in requirements.values()} == {"passed"}


def test_the_reference_platform_passes_the_platform_suite(tmp_path: Path) -> None:
    code, results = run_target("platform:sample", tmp_path)
    assert code == 0, results
    requirements = results["requirements"]
    assert isinstance(requirements, dict)
    assert set(requirements) == {r.id for r in load_catalogue().values() if r.suite == "platform"}


def test_a_platform_at_a_url_is_certified_with_its_ca(tmp_path: Path) -> None:
    port = free_port()
    url, ca = f"http://127.0.0.1:{port}", tmp_path / "jlis"
    argv = [*MYNAHIL, "serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port),
            "--ca", str(ca)]  # fmt: skip
    with running(argv, f"{url}/v1/health"):
        code, results = run_target(f"platform:{url}", tmp_path / "report", platform_ca=ca)
    assert code == 0, results
    assert results["passed"] is True


def test_an_untested_requirement_fails_the_run(tmp_path: Path) -> None:
    code, results = run_target("card:inproc", tmp_path, extra=["-k", "test_jpki_ap_selects"])
    requirements = results["requirements"]
    assert isinstance(requirements, dict)
    assert requirements["JPKI-SEL-001"]["verdict"] == "passed"
    assert requirements["JPKI-PIN-003"]["verdict"] == "untested"
    assert results["passed"] is False
    assert code != 0


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Run from another folder: the scenario data is found through MYNAHIL_SCENARIOS.
    env = {**os.environ, "MYNAHIL_SCENARIOS": str(SCENARIOS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-p", "conformance.plugin",
         "-p", "no:cacheprovider", "-q", *args],
        capture_output=True, text=True, check=False, cwd=folder, env=env,
    )  # fmt: skip


def test_a_test_naming_an_unknown_requirement_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_bogus.py").write_text(
        "import pytest\n\n@pytest.mark.requirement('NOPE-001')\ndef test_x():\n    pass\n"
    )
    result = _pytest(tmp_path, "--conformance-target", "card:inproc",
                     "--conformance-report", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode != 0
    assert "unknown requirement NOPE-001" in result.stdout + result.stderr


def test_the_plugin_is_inert_without_a_target(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout
    assert not (tmp_path / "reports").exists()


def test_replay_reproduces_and_finds_a_divergence(tmp_path: Path) -> None:
    run_target("card:defect:sw_63c0_after_lockout", tmp_path)
    trace = tmp_path / "traces" / "test_third_wrong_pin_blocks_for_good.jsonl"
    result = CliRunner().invoke(app, ["replay", str(trace)])
    assert result.exit_code == 1
    assert "recorded 63c0" in result.output
    good = tmp_path / "traces" / "test_jpki_ap_selects.jsonl"
    assert CliRunner().invoke(app, ["replay", str(good)]).exit_code == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "budget_ms": -1}, "budget_ms"),
        ({"name": "x", "budget_ms": 10, "expected_atr": "zz"}, "expected_atr"),
        ({"name": "", "budget_ms": 10}, "name"),
        ({"name": "x", "budget_ms": 10, "colour": "red"}, "colour: unknown field"),
    ],
)
def test_device_profile_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        DeviceProfile.from_mapping(data, "profile.toml")


def test_unknown_targets_are_refused() -> None:
    with pytest.raises(TargetError, match="unknown target"):
        parse_target("usb:whatever")
    with pytest.raises(TargetError, match="no defect"):
        parse_target("card:defect:nonexistent")
