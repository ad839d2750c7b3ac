"""The unit tests run on every core (pytest-xdist, tox.ini): each worker must get its own
``$MYNAHIL_HOME``, or two CLI tests creating the default J-LIS CA there race each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each test writes where MYNAHIL_HOME points in the worker that ran it.
_PROBE = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(8))
def test_probe(n: int) -> None:
    out = Path(os.environ["PROBE_OUT"]) / f"{n}.txt"
    out.write_text(os.environ["PYTEST_XDIST_WORKER"] + " " + os.environ["MYNAHIL_HOME"])
"""


def test_each_worker_has_its_own_home(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(_PROBE)
    out, home = tmp_path / "out", tmp_path / "home"
    out.mkdir()
    # Only the two plugins that matter (the others' imports would cost seconds per worker).
    env = {**os.environ, "PROBE_OUT": str(out), "MYNAHIL_HOME": str(home),
           "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # fmt: skip
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist.plugin",
         "-p", "tests.conftest",
         "-n", "2", "--dist", "loadgroup", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    seen = {tuple(path.read_text().split(" ", 1)) for path in out.iterdir()}
    assert len(seen) >= 1
    for worker, worker_home in seen:
        assert Path(worker_home) == home / worker
