"""Where the scenario data is found: beside the code, in an installed wheel, or where told."""

from __future__ import annotations

import site
import sys
from pathlib import Path

import pytest

from mynahil import paths


def test_an_editable_install_uses_the_checkouts_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYNAHIL_SCENARIOS", raising=False)
    found = paths.scenarios_dir()
    beside = Path(paths.__file__).resolve().parents[1] / "scenarios"
    assert found == beside or not beside.is_dir()
    assert (found / "campaigns" / "round1.toml").is_file()


def test_an_installed_wheel_uses_its_shared_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "prefix" / "share" / "mynahil" / "scenarios"
    shared.mkdir(parents=True)
    monkeypatch.delenv("MYNAHIL_SCENARIOS", raising=False)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site" / "mynahil" / "paths.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert paths.scenarios_dir() == shared


def test_a_user_install_uses_the_copy_under_the_users_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``pip install --user`` puts the wheel's data under the user's base (``~/.local``), not
    under the interpreter's prefix."""
    shared = tmp_path / "user" / "share" / "mynahil" / "scenarios"
    shared.mkdir(parents=True)
    monkeypatch.delenv("MYNAHIL_SCENARIOS", raising=False)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "user" / "lib" / "mynahil" / "paths.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.setattr(site, "getuserbase", lambda: str(tmp_path / "user"))
    assert paths.scenarios_dir() == shared


def test_the_environment_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MYNAHIL_SCENARIOS", str(tmp_path))
    assert paths.scenarios_dir() == tmp_path


def test_the_wheel_ships_every_scenario_file() -> None:
    """pyproject's data-files lists folders one by one: a new folder must be added there."""
    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    folders = {p.parent for p in (root / "scenarios").rglob("*.toml")}
    for folder in folders:
        relative = folder.relative_to(root).as_posix()
        assert f'"share/mynahil/{relative}" = ["{relative}/*.toml' in pyproject, relative
