"""The JSON Schemas of the configuration files: shipped as generated, and every bundled file
valid against its own (as an editor with taplo / Even Better TOML checks it)."""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from typer.testing import CliRunner

from mynahil.cli import app
from mynahil.cli.schemas import SCHEMAS, schema_text
from mynahil.paths import scenarios_dir

SHIPPED = scenarios_dir() / "schemas"


def as_json(value: Any) -> Any:
    """A TOML document as an editor validates it: dates and times become their strings."""
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    return value


def problems(kind: str, document: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(json.loads(schema_text(kind)))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def bundled(kind: str) -> list[Path]:
    return sorted(scenarios_dir().glob(SCHEMAS[kind][0]))


@pytest.mark.parametrize("kind", list(SCHEMAS))
def test_the_shipped_schema_is_the_generated_one(kind: str) -> None:
    shipped = (SHIPPED / f"{kind}.schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text(kind), (
        f"regenerate: mynahil scenarios schema --out scenarios/schemas ({kind} changed)"
    )
    Draft7Validator.check_schema(json.loads(shipped))


@pytest.mark.parametrize(
    ("kind", "path"),
    [(kind, path) for kind in SCHEMAS for path in bundled(kind)],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_every_bundled_file_is_valid_and_names_its_schema(kind: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert problems(kind, as_json(tomllib.loads(text))) == []
    directive = text.splitlines()[0].removeprefix("#:schema ")
    assert (path.parent / directive).resolve() == (SHIPPED / f"{kind}.schema.json").resolve()


def test_every_kind_has_bundled_files() -> None:
    assert all(bundled(kind) for kind in SCHEMAS)


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    round1 = as_json(tomllib.loads((scenarios_dir() / "round1.toml").read_text("utf-8")))
    round1["platform"]["sevrers"] = 3
    round1["channels"]["iphone"]["share"] = 1.4
    round1["campaign"]["id"] = 1
    found = problems("scenario", round1)
    assert any("sevrers" in p for p in found)
    assert any("'channels', 'iphone', 'share'" in p and "1.4" in p for p in found)
    assert any("'campaign', 'id'" in p for p in found)
    device = {"name": "x", "interface": "bluetooth", "budget_ms": 0}
    assert len(problems("device", device)) == 2


def test_a_file_that_extends_needs_only_what_it_changes() -> None:
    assert problems("scenario", {"extends": "round1.toml", "platform": {"servers": 3}}) == []
    assert problems("scenario", {"extends": "round1.toml", "platform": {"servers": 0}})
    assert any("'run' is a required property" in p for p in problems("scenario", {"name": "x"}))


def test_the_command_prints_one_kind_or_writes_them_all(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["scenarios", "schema", "device"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["title"].startswith("mynahil device profile")
    written = runner.invoke(app, ["scenarios", "schema", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.schema.json" for k in SCHEMAS)
    unknown = runner.invoke(app, ["scenarios", "schema", "printer"])
    assert unknown.exit_code == 2


def test_a_copied_scenario_still_finds_its_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scenarios", "copy", "launch-week", str(tmp_path)])
    assert result.exit_code == 0, result.output
    first = (tmp_path / "launch-week.toml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"#:schema {(SHIPPED / 'scenario.schema.json').resolve().as_uri()}"
