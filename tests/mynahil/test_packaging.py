"""What a vendor relies on from `pip install mynahil` alone: the version, the conformance run's
dependencies in the core, and a one-line error naming the extra when an optional part is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI in a fresh interpreter in which `module` cannot be imported, as on a machine
# where its extra was never installed.
_WITHOUT = """
import sys
sys.modules[{module!r}] = None  # import of it raises ImportError
sys.argv = ["mynahil", *{argv!r}]
from mynahil.cli import main
main()
"""


def _cli_without(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    code = _WITHOUT.format(module=module, argv=list(argv))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )


def test_version_is_the_installed_distributions() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "mynahil", "--version"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert completed.stdout.strip() == f"mynahil {version('mynahil')}"


def test_the_conformance_run_needs_no_extra() -> None:
    """`mynahil conformance run` is a pytest session: pytest and allure-pytest are core."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {dep.split(">")[0].split("=")[0].split("[")[0] for dep in project["dependencies"]}
    assert {"pytest", "allure-pytest"} <= core
    assert "all" in project["optional-dependencies"]


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("locust", ["loadtest", "scenarios/launch-week.toml", "--platform", "http://127.0.0.1:9"],
         "load"),
        ("distributed", ["simulate", "scenarios/launch-week.toml", "--executor",
                         "dask://127.0.0.1:9", "--replications", "2"], "cluster"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_named_in_one_line(module: str, argv: list[str], extra: str) -> None:
    completed = _cli_without(module, *argv)
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert f"pip install 'mynahil[{extra}]'" in lines[0]
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("target", ["pcsc:Virtual PCD 00 00", "card:vpcd"])
def test_a_conformance_run_through_pcsc_names_the_extra_in_one_line(
    tmp_path: Path, target: str
) -> None:
    """Not one "PC/SC needs pyscard" failure per test (58 of them): one line before the run."""
    completed = _cli_without(
        "smartcard", "conformance", "run", "--target", target, "--report", str(tmp_path / "r")
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert "pip install 'mynahil[pcsc]'" in lines[0]
    assert not (tmp_path / "r" / "results.json").exists()


def test_readers_names_the_pcsc_extra_in_one_line() -> None:
    completed = _cli_without("smartcard", "readers")
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert "pip install 'mynahil[pcsc]'" in lines[0]
