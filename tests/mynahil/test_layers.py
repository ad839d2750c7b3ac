"""The floors of the project (README, "Layout"): the core imports nothing else of the project.

`lint-imports` (tox's lint env) checks every import statically; this checks what importing the
core really loads, and that the two contracts in pyproject.toml name the same core modules."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UPPER_FLOORS = ("card_emulator", "reference_impl", "simulator", "conformance")


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _core_modules() -> list[str]:
    """The core's modules, from the contract that places every module of mynahil/ on a floor."""
    layers = _contracts()["mynahil-floors"]["layers"]
    assert isinstance(layers, list)
    return [name.strip() for name in layers[-1].split(":")]


def test_both_contracts_name_the_same_core() -> None:
    floors = _contracts()["floors"]["layers"]
    assert isinstance(floors, list)
    across_packages = [name.strip() for name in floors[-1].split(":")]
    assert across_packages == [f"mynahil.{name}" for name in _core_modules()]


def test_importing_the_core_loads_no_upper_floor() -> None:
    modules = [f"mynahil.{name}" for name in _core_modules()]
    probe = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({UPPER_FLOORS!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
