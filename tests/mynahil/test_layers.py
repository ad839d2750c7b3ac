"""The floors of the project (README, "Layout"): the core imports nothing else of the project.

`lint-imports` (tox's lint env) checks every import statically; this checks what importing the
core really loads, and that the customer's top-level folders are known only by their installed
names (mynahil.<folder>)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The customer's folders: top level in the checkout, installed as mynahil.<folder>.
FOLDERS = ("card_emulator", "reference_impl", "simulator", "conformance")
UPPER_FLOORS = tuple(f"mynahil.{folder}" for folder in FOLDERS)


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _core_modules() -> list[str]:
    """The core's modules, from the contract that places every module of mynahil/ on a floor."""
    layers = _contracts()["floors"]["layers"]
    assert isinstance(layers, list)
    return [name.strip() for name in layers[-1].split(":")]


def test_importing_the_core_loads_no_upper_floor() -> None:
    modules = [f"mynahil.{name}" for name in _core_modules()]
    probe = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{'.'.join(m.split('.')[:2]) for m in sys.modules}} & "
        f"set({UPPER_FLOORS!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_the_links_show_the_installed_layout() -> None:
    """The wheel maps mynahil.<folder> to the top-level folder (package-dir); the link
    mynahil/<folder> shows mypy, import-linter and pytest the same layout in the checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = config["tool"]["setuptools"]["package-dir"]
    assert mapping == {f"mynahil.{folder}": folder for folder in FOLDERS}
    for folder in FOLDERS:
        link = ROOT / "mynahil" / folder
        assert link.is_symlink(), f"{link} is not a link to ../{folder}"
        assert os.readlink(link) == f"../{folder}"


def test_nothing_imports_a_folder_by_its_top_level_name() -> None:
    """`import conformance` would load a second copy of the modules beside mynahil.conformance
    (from a checkout) or fail (from the wheel, which installs only mynahil)."""
    offenders = []
    for top in ("mynahil", *FOLDERS, "tests", "benchmarks"):
        for folder, dirs, files in os.walk(ROOT / top):  # links not followed: each file once
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in (f for f in files if f.endswith(".py")):
                path = Path(folder) / name
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                    if isinstance(node, ast.Import):
                        modules = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        modules = [node.module or ""]
                    else:
                        continue
                    if any(module.split(".")[0] in FOLDERS for module in modules):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_wheel_lists_every_package() -> None:
    """pyproject lists the packages (find cannot place the folders under mynahil): a package
    added to a folder and not to the list would be missing from the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    on_disk = []
    for top in ("mynahil", *FOLDERS):
        for folder, dirs, _ in os.walk(ROOT / top):  # links not followed
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            if (Path(folder) / "__init__.py").is_file():
                parts = Path(folder).relative_to(ROOT).parts
                on_disk.append(".".join(parts if top == "mynahil" else ("mynahil", *parts)))
    assert sorted(config["tool"]["setuptools"]["packages"]) == sorted(on_disk)
