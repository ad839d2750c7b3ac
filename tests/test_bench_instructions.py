"""``bench_interleaved.py --instructions``: a chunk's work counted under callgrind between two
markers (``os.getppid`` zeroes the counts, ``os.getpgrp`` writes them out). What the figures
rest on: the markers exist in this Python, what lies between them is what is counted, and the
same work counts the same every time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import IN_CI, benchmark_script

LOOPS = (200_000, 200_000, 400_000)
"""Turns of a small loop in each of three chunks, one process."""


def test_the_work_between_the_markers_is_counted_and_repeats(tmp_path: Path) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        message = "valgrind is not installed (apt-get install valgrind)"
        if IN_CI:
            pytest.fail(f"CI=true, so {message}", pytrace=False)
        pytest.skip(message)
    # Between the chunks, more work than in them: none of it may be counted.
    chunks = "".join(
        f"os.getppid()\nsum(range({n}))\nos.getpgrp()\nsum(range(1_000_000))\n" for n in LOOPS
    )
    out = tmp_path / "counts"
    subprocess.run(
        [valgrind, "--quiet", "--tool=callgrind", "--zero-before=os_getppid",
         "--dump-before=os_getpgrp", f"--callgrind-out-file={out}",
         sys.executable, "-c", "import os\n" + chunks],
        check=True, timeout=300,
    )  # fmt: skip
    with benchmark_script("bench_interleaved") as bench:
        once, again, double = (bench.instructions_in(Path(f"{out}.{i}")) for i in (1, 2, 3))
    assert abs(again - once) <= 0.005 * once  # the same work, the same count
    assert 1.8 <= double / once <= 2.2  # the chunk's loop is what is counted
