"""Conformance suite run time per target, and the defect matrix's detection rate.

Targets: the emulated card in-process, through pcscd + vpcd (when this machine has pcscd),
and the sample operator; then every defective card and operator, each of which must fail
under its expected requirement. Run: ``python benchmarks/bench_conformance.py``. Last line JSON.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from conformance.cli import run_target
from conformance.defects import DEFECTS
from conformance.operator_harness import OPERATOR_DEFECTS


def timed(target: str, folder: Path) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    _code, results = run_target(target, folder / target.replace(":", "_"))
    return time.perf_counter() - start, results


def main() -> None:
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for target in ("card:inproc", "card:vpcd", "operator:sample"):
            try:
                seconds, results = timed(target, folder)
            except RuntimeError as exc:
                print(f"{target}: not measured ({exc})")
                continue
            key = target.replace(":", "_")
            figures[f"{key}_seconds"] = round(seconds, 2)
            figures[f"{key}_passed"] = results["passed"]
            print(f"{target}: {seconds:.1f} s, passed={results['passed']}")
        matrix = [(f"card:defect:{n}", d.caught_by) for n, d in DEFECTS.items()]
        matrix += [(f"operator:defect:{n}", d[1]) for n, d in OPERATOR_DEFECTS.items()]
        caught = 0
        for target, expected in matrix:
            _seconds, results = timed(target, folder)
            requirements = results["requirements"]
            assert isinstance(requirements, dict)
            failed = {r for r, v in requirements.items() if v["verdict"] == "failed"}
            hit = set(expected) <= failed
            caught += hit
            print(f"{target}: {'caught' if hit else 'MISSED'} ({', '.join(sorted(failed))})")
        figures["defects"] = len(matrix)
        figures["defects_caught"] = caught
        figures["detection_rate"] = round(caught / len(matrix), 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
