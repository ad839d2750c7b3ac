"""Instructions per MyKey issuance in-process on SQLite, counted by callgrind: a figure a busy
machine does not change, for before/after comparisons where rates are too noisy.

The script runs itself under ``valgrind --tool=callgrind`` with instrumentation off, and
switches it on (``callgrind_control -i on``) for the timed issuances only. Needs valgrind.

Run: ``python benchmarks/bench_instructions.py [--cards N]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_mykey

from mynahil.reference_impl.jlis import KeyPool
from mynahil.reference_impl.platform import build_platform

_INSIDE = "MYNAHIL_UNDER_CALLGRIND"
WARM_UP = 20


def _switch(on: bool) -> None:
    flag = "on" if on else "off"
    subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True,
                   capture_output=True)  # fmt: skip


def _issue(cards: int) -> None:
    """Inside callgrind: issue ``cards`` IDs with instrumentation on around them alone."""
    with tempfile.TemporaryDirectory() as tmp:
        platform = build_platform(f"sqlite:///{tmp}/bench.db", Path(tmp) / "jlis")
        try:
            made = bench_mykey.make_cards(platform, cards + WARM_UP, KeyPool.generate(64, seed=5))
            proofs = bench_mykey.card_proofs(platform, made)
            bench_mykey.in_process_rate(platform, proofs[:WARM_UP])  # first compiles, caches
            _switch(True)
            bench_mykey.in_process_rate(platform, proofs[WARM_UP:])
            _switch(False)
        finally:
            platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=200, help="issuances counted")
    args = parser.parse_args()
    if os.environ.get(_INSIDE):
        _issue(args.cards)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--cards", str(args.cards)],
            check=True, capture_output=True, env={**os.environ, _INSIDE: "1"},
        )  # fmt: skip
        report = subprocess.run(["callgrind_annotate", str(out)], check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
    found = re.search(r"([\d,]+)\s.*PROGRAM TOTALS", report)
    if found is None:
        raise SystemExit("callgrind_annotate printed no PROGRAM TOTALS")
    per_issuance = int(found.group(1).replace(",", "")) / args.cards
    print(f"SQLite in-process: {per_issuance / 1e6:.2f} M instructions per issuance")
    print(json.dumps({"issuances": args.cards,
                      "sqlite_inproc_instructions_per_issuance": round(per_issuance)}))  # fmt: skip


if __name__ == "__main__":
    main()
