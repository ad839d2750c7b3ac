"""Conformance suite run time per target, and the defect matrix's detection rate (target 100%).

Targets: the emulated card in process, and through pcscd + vpcd when this machine has pcscd;
the sample operator and the reference platform (each with its harness);
then the whole defect matrix (every defective card and operator must fail under its expected
requirement, every correct target must pass). ``wall`` is the whole run as a vendor sees it
(a fresh interpreter, imports, the report); ``session`` is the pytest session inside it.
Run: ``python benchmarks/bench_conformance.py``. Human lines, then one JSON object last.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mynahil.conformance.cli import _pcscd_available, run_matrix, run_target


def timed_run(target: str, folder: Path) -> dict[str, Any]:
    start = time.perf_counter()
    code, results = run_target(target, folder / target.replace(":", "_"))
    wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 2),
        "session_s": round(float(results["seconds"]), 2),
        "tests": len(results["tests"]),
        "requirements": len(results["requirements"]),
        "passed": bool(results["passed"]) and code == 0,
    }


def main() -> None:
    figures: dict[str, Any] = {}
    pcsc = _pcscd_available()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for target in ("card:inproc", "card:vpcd", "operator:sample", "platform:sample"):
            if target == "card:vpcd" and not pcsc:
                print(f"{target}: not measured (pcscd is not running)")
                continue
            run = timed_run(target, folder)
            figures[target] = run
            print(
                f"{target}: {run['wall_s']:.1f} s wall, {run['session_s']:.1f} s in pytest, "
                f"{run['tests']} tests, {run['requirements']} requirements, "
                f"{'passed' if run['passed'] else 'FAILED'}"
            )
        summary = run_matrix(folder / "matrix", with_pcsc=pcsc)
        for row in summary["rows"]:
            verdict = "ok" if row["ok"] else "MISSED"
            print(f"  {verdict:6} {row['target']:40} {row['seconds']:5.1f} s  {row['expected']}")
        print(
            f"defect matrix: {summary['caught']}/{summary['defects']} defects caught "
            f"({summary['detection_rate']:.0%}), correct targets "
            f"{'pass' if summary['correct_targets_pass'] else 'FAIL'}, {summary['seconds']:.1f} s"
        )
        figures["matrix"] = {
            "defects": summary["defects"],
            "caught": summary["caught"],
            "detection_rate": summary["detection_rate"],
            "correct_targets_pass": summary["correct_targets_pass"],
            "seconds": summary["seconds"],
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
