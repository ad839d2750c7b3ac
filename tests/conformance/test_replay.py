"""Replay: a recorded trace plays against the emulated card; the first divergence is named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mynahil.conformance.cli import app, run_target
from mynahil.conformance.replay import replay_trace
from mynahil.conformance.targets import parse_target
from tests.support import PIN

from .conftest import Run

LOCKOUT = "test_third_wrong_pin_blocks_for_good.jsonl"


def test_a_defective_cards_trace_diverges_from_the_correct_card(defect_run: Run) -> None:
    _code, _results, report = defect_run
    result = CliRunner().invoke(app, ["replay", str(report / "traces" / LOCKOUT)])
    assert result.exit_code == 1, result.output
    assert "recorded 63C0" in result.output
    assert "emulated 6984" in result.output


def test_the_failure_reproduces_on_the_same_defect(defect_run: Run) -> None:
    _code, _results, report = defect_run
    card = parse_target("card:defect:sw_63c0_after_lockout").emulated_card(faults="")
    result = replay_trace(report / "traces" / LOCKOUT, card)
    assert result.reproduced
    assert result.commands > 5
    cli = CliRunner().invoke(app, ["replay", str(report / "traces" / LOCKOUT),
                                   "--against", "card:defect:sw_63c0_after_lockout"])  # fmt: skip
    assert cli.exit_code == 0, cli.output


def test_correct_traces_replay_alike_with_their_resets(inproc_run: Run) -> None:
    _code, _results, report = inproc_run
    for name in ("test_a_verified_pin_lapses.jsonl", "test_jpki_ap_selects.jsonl",
                 "test_counter_survives_power_cycle_and_reselect.jsonl"):  # fmt: skip
        result = CliRunner().invoke(app, ["replay", str(report / "traces" / name)])
        assert result.exit_code == 0, result.output


def test_a_masked_pin_replays(tmp_path: Path) -> None:
    run_target("realistic:inproc", tmp_path, pin=PIN, extra=["-k", "signature_verifies"])
    trace = tmp_path / "traces" / "test_signature_verifies_with_the_certificate.jsonl"
    assert '"redacted": "pin"' in trace.read_text()
    result = CliRunner().invoke(app, ["replay", str(trace)])
    assert result.exit_code == 0, result.output


def test_a_broken_trace_is_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"nothing": 1}\n')
    result = CliRunner().invoke(app, ["replay", str(trace)])
    assert result.exit_code == 2
    assert "not a trace entry" in result.output
