"""A planner outside the checkout: bundled scenarios by name, and a copy that still extends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mynahil.cli import app
from mynahil.simulator.scenario import ScenarioError, bundled_scenarios, load_scenario


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a folder with no scenarios/ in it, as a planner's own would be."""
    monkeypatch.chdir(tmp_path)


def test_every_bundled_scenario_loads_by_name() -> None:
    names = set(bundled_scenarios())
    assert {"round1", "launch-week"} <= names
    for name in names:
        assert load_scenario(name).name == name


def test_simulate_a_bundled_scenario_by_name(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["simulate", "launch-week", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "summary.json").read_text())["cumulative_applications"]) == 7


def test_a_folder_named_like_a_bundled_scenario_does_not_hide_it(tmp_path: Path) -> None:
    """The output of ``simulate round1 --out round1`` sits in ./round1 for the next run."""
    (tmp_path / "round1").mkdir()
    assert load_scenario("round1").name == "round1"


def test_list_names_each_bundled_scenario_with_its_description() -> None:
    result = CliRunner().invoke(app, ["scenarios", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert set(rows) == set(bundled_scenarios())
    assert "launch week" in rows["launch-week"]


def test_a_copy_still_extends_its_bundled_parent(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    result = CliRunner().invoke(app, ["scenarios", "copy", "launch-week", str(mine)])
    assert result.exit_code == 0, result.output
    copied = mine / "launch-week.toml"
    assert 'extends = "round1.toml"' in copied.read_text()
    edited = copied.read_text().replace("servers = 8", "servers = 3")
    copied.write_text(edited)
    scenario = load_scenario(copied)
    assert scenario.platform.servers == 3
    # what it inherits from round1.toml is there
    assert scenario.population == load_scenario("launch-week").population


def test_a_copy_simulates_with_its_parents_published_figures(tmp_path: Path) -> None:
    """The copy lives where no data/ folder is: the calibration check still finds round 1's
    published figures through the bundled parent."""
    mine = tmp_path / "mine"
    runner = CliRunner()
    assert runner.invoke(app, ["scenarios", "copy", "launch-week", str(mine)]).exit_code == 0
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["simulate", str(mine / "launch-week.toml"), "--out", str(out), "--quiet",
              "--no-operators"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "published" in (out / "report.html").read_text()


def test_copy_refuses_to_overwrite_and_unknown_names_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["scenarios", "copy", "round1", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["scenarios", "copy", "round1", str(tmp_path)])
    assert again.exit_code == 2
    with pytest.raises(ScenarioError, match="no such scenario file, nor a bundled scenario"):
        load_scenario("no-such-scenario")


def test_a_vendor_copies_a_bundled_device_or_operator_profile(tmp_path: Path) -> None:
    """The README's vendor paths start from a bundled profile: from a wheel it is under
    share/, so `scenarios copy devices/NAME` and `operators/NAME` fetch it by name."""
    from mynahil.conformance.targets import load_device_profile

    runner = CliRunner()
    mine = tmp_path / "mine"
    for name in ("devices/generic-reader", "operators/example"):
        result = runner.invoke(app, ["scenarios", "copy", name, str(mine)])
        assert result.exit_code == 0, result.output
    reader = mine / "generic-reader.toml"
    assert load_device_profile(reader).name == "PC/SC reader with a My Number card"
    schema_line = reader.read_text(encoding="utf-8").splitlines()[0]
    assert schema_line.startswith("#:schema file://")  # the bundled schema, not ../schemas
    operator = (mine / "example.toml").read_text(encoding="utf-8")
    assert 'operator_id = "example-pay"' in operator
    assert operator.startswith("#:schema file://")
    unknown = runner.invoke(app, ["scenarios", "copy", "devices/no-such", str(mine)])
    assert unknown.exit_code == 2
    assert "devices/generic-reader" in unknown.output
