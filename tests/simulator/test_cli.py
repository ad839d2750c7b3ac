from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from mynahil.simulator.cli import simulate

from .conftest import SCENARIOS

app = typer.Typer()
app.command("simulate")(simulate)


@app.command()
def version() -> None:  # a second command, so "simulate" stays a subcommand as in mynahil
    """Unused."""


def test_simulate_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate", str(SCENARIOS / "launch-week.toml"), "--out", str(out), "--quiet",
            "--workers", "2", "--sweep", "servers=2,4,8", "--target", "platform_p95<2s@2020-07-01",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["cumulative_applications"]) == 7
    assert summary["sweep"]["best"] in (2, 4, 8, None)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "published" in html
    assert {p.name for p in out.glob("*.png")} >= {"cumulative.png", "platform.png", "sweep.png"}
    header = (out / "timeseries.csv").read_text().splitlines()[0]
    assert "wait_p95_municipal_window_min" in header
    assert "platform_utilisation" in header


def test_input_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'extends = "' + str(SCENARIOS / "launch-week.toml") + '"\n[platform]\nservers = 0\n'
    )
    result = CliRunner().invoke(app, ["simulate", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert (
        "error: platform.servers: must be an integer between 1 and 100000, got 0" in result.output
    )
    result = CliRunner().invoke(
        app, ["simulate", str(SCENARIOS / "launch-week.toml"), "--target", "platform_p95<2s"]
    )
    assert result.exit_code == 2
