"""Golden results (issue 20.5): each requirement's verdict against a stored reference run;
every changed verdict listed, and a non-zero exit on any change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mynahil.conformance.golden import GOLDENS, Change, GoldenError, changed_verdicts, load_golden
from tests.support import mynahil

from .conftest import Run


def test_the_emulated_card_matches_its_golden(inproc_run: Run) -> None:
    _code, results, _report = inproc_run
    changes = changed_verdicts(load_golden(GOLDENS / "card-inproc.json"), results)
    assert changes == [], (
        "verdicts changed; if on purpose (a new requirement, say), regenerate the golden: "
        "mynahil conformance run --target card:inproc "
        "--golden conformance/goldens/card-inproc.json --update-golden"
    )


def test_every_changed_verdict_is_listed() -> None:
    golden = {"verdicts": {"A-1": "passed", "A-2": "failed", "A-3": "passed"}}
    results = {"target": "t", "requirements": {
        "A-1": {"verdict": "passed"}, "A-2": {"verdict": "passed"}, "A-4": {"verdict": "skipped"},
    }}  # fmt: skip
    assert changed_verdicts(golden, results) == [
        Change("A-2", "failed", "passed"), Change("A-3", "passed", "absent"),
        Change("A-4", "absent", "skipped"),
    ]  # fmt: skip


def test_a_golden_file_that_cannot_be_used_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text('{"verdicts": ["passed"]}', encoding="utf-8")
    with pytest.raises(GoldenError, match=r"--golden .*g\.json: needs \"verdicts\""):
        load_golden(bad)
    with pytest.raises(GoldenError, match="cannot read it"):
        load_golden(tmp_path / "missing.json")


def test_conformance_run_compares_with_a_golden(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    argv = ["conformance", "run", "--target", "card:inproc", "--report", str(tmp_path / "r"),
            "--golden", str(golden)]  # fmt: skip
    select = ["--", "-k", "JPKI-ATR-001 or JPKI-SEL-001"]
    written = mynahil(*argv, "--update-golden", *select)
    assert written.returncode == 0, written.stdout + written.stderr
    same = mynahil(*argv, *select)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no changed verdict" in same.stdout
    data = json.loads(golden.read_text(encoding="utf-8"))
    data["verdicts"]["JPKI-ATR-001"] = "failed"
    golden.write_text(json.dumps(data), encoding="utf-8")
    changed = mynahil(*argv, *select)
    assert changed.returncode == 1
    assert "CHANGED   JPKI-ATR-001: failed -> passed" in changed.stderr
    assert "1 changed verdict(s)" in changed.stdout
