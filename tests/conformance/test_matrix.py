"""The defect matrix: every defective card is caught under its expected requirement, and every
correct target passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mynahil.conformance import load_catalogue
from mynahil.conformance.cli import app, run_matrix
from mynahil.conformance.defects import DEFECTS, MATRIX, MatrixRow, full_matrix


def test_every_defect_has_a_row_naming_known_requirements() -> None:
    catalogue = load_catalogue()
    rows = {r.target: r for r in MATRIX}
    for name, defect in DEFECTS.items():
        assert rows[f"card:defect:{name}"].must_fail == defect.caught_by
        assert set(defect.caught_by) <= set(catalogue)


def test_the_card_matrix_catches_every_defect(tmp_path: Path) -> None:
    summary = run_matrix(tmp_path, with_pcsc=False, rows=MATRIX)
    missed = [r for r in summary["rows"] if not r["ok"]]
    assert not missed, missed
    assert summary["detection_rate"] == 1.0
    assert summary["defects"] == len(DEFECTS)
    assert json.loads((tmp_path / "defects.json").read_text())["passed"] is True


def test_a_defect_caught_under_the_wrong_requirement_fails_the_matrix(tmp_path: Path) -> None:
    rows = [MatrixRow("card:defect:wrong_atr", ("JPKI-PIN-003",))]
    summary = run_matrix(tmp_path, with_pcsc=False, rows=rows)
    assert summary["passed"] is False
    assert summary["detection_rate"] == 0.0


def test_the_defects_command_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mynahil.conformance.defects

    rows = [MatrixRow("card:inproc", ()), MatrixRow("card:defect:wrong_atr", ("JPKI-ATR-001",))]
    monkeypatch.setattr(mynahil.conformance.defects, "full_matrix", lambda: rows)
    result = CliRunner().invoke(app, ["defects", "--report", str(tmp_path), "--no-pcsc"])
    assert result.exit_code == 0, result.output
    assert "card:defect:wrong_atr" in result.output
    assert "detection rate 100%" in result.output


def test_the_operator_and_platform_rows_of_the_matrix(tmp_path: Path) -> None:
    """The rest of `mynahil conformance defects`: each defective operator is caught under its
    requirement; the sample operator and the reference platform pass."""
    rows = [r for r in full_matrix() if not r.target.startswith("card:")]
    assert {r.target for r in rows} >= {"operator:sample", "platform:sample"}
    summary = run_matrix(tmp_path, with_pcsc=False, rows=rows)
    missed = [r for r in summary["rows"] if not r["ok"]]
    assert not missed, missed
    assert summary["detection_rate"] == 1.0
