"""Published figures and the calibration: the loader names bad rows; the fit recovers known
parameters from a synthetic series; the fitted values land in the scenario file."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mynahil.simulator.calibration import (
    calibrate,
    predict_rows,
    update_scenario_text,
    with_parameters,
)
from mynahil.simulator.cli import calibrate as calibrate_command
from mynahil.simulator.demand import demand_curve
from mynahil.simulator.published import DatasetError, load_published
from mynahil.simulator.scenario import Scenario, load_scenario

from .conftest import SCENARIOS

HEADER = "date,value,kind,publisher,title,url,note\n"
GOOD = "2020-08-30,3770000,applications,Impress Watch,t,https://example.org/a,\n"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "figures.csv"
    path.write_text(HEADER + body)
    return path


def test_bundled_datasets_load_with_sources() -> None:
    for name in ("round1.csv", "round2.csv"):
        rows = load_published(SCENARIOS / "data" / name)
        assert len(rows) >= 10
        assert all(r.url.startswith("https://") and r.publisher for r in rows)
        assert [r.day for r in rows] == sorted(r.day for r in rows)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2020-13-01,1,applications,P,t,https://x.org,", "figures.csv:3: date must be"),
        (
            "2020-09-01,lots,applications,P,t,https://x.org,",
            "figures.csv:3: value must be a number",
        ),
        ("2020-09-01,-5,applications,P,t,https://x.org,", "figures.csv:3: value must be > 0"),
        ("2020-09-01,5,points,P,t,https://x.org,", "figures.csv:3: kind must be one of"),
        ("2020-09-01,5,applications,,t,https://x.org,", "figures.csv:3: publisher is empty"),
        ("2020-09-01,5,applications,P,t,,", "figures.csv:3: url must be"),
        ("2020-08-30,5,applications,P,t,https://x.org,", "figures.csv:3: a second applications"),
        ("2020-09-01,5,applications", "figures.csv:3: expected 7 fields"),
    ],
)
def test_a_bad_row_is_named_by_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        load_published(_write(tmp_path, GOOD + line + "\n"))
    assert message in str(caught.value)


def test_missing_column_and_file(tmp_path: Path) -> None:
    path = tmp_path / "figures.csv"
    path.write_text("date,value,kind\n2020-08-30,1,applications\n")
    with pytest.raises(DatasetError, match="missing column 'publisher'"):
        load_published(path)
    with pytest.raises(DatasetError, match="no such data file"):
        load_published(tmp_path / "absent.csv")


TRUE = {
    "demand.apply_share": 0.55,
    "demand.base_daily_rate": 0.006,
    "demand.launch_peak": 3.0,
    "campaign.events.before_points.multiplier": 0.2,
    "campaign.events.point_start.multiplier": 2.5,
}


def _synthetic(round1: Scenario, tmp_path: Path) -> Path:
    """Rows drawn from the model itself with the TRUE parameters (no noise)."""
    truth = with_parameters(round1, TRUE)
    curve = demand_curve(truth, date(2021, 12, 31))
    lines = []
    for day in ("2020-07-01", "2020-07-03", "2020-07-05", "2020-07-31", "2020-08-30",
                "2020-09-30", "2020-12-31", "2021-06-30", "2021-12-31"):  # fmt: skip
        when = date.fromisoformat(day)
        for kind in ("applications", "reservations"):
            value = curve.cumulative(kind, when)
            lines.append(f"{day},{value:.0f},{kind},synthetic,known parameters,https://x.org,")
    return _write(tmp_path, "\n".join(lines) + "\n")


def test_calibration_recovers_known_parameters(round1: Scenario, tmp_path: Path) -> None:
    data = _synthetic(round1, tmp_path)
    assert round1.calibration is not None
    spec = dataclasses.replace(
        round1.calibration, fit=tuple(TRUE), holdout_after=date(2021, 6, 30), starts=4, seed=3
    )
    start = with_parameters(round1, dict.fromkeys(TRUE, 1.0) | {"demand.apply_share": 0.9})
    result = calibrate(dataclasses.replace(start, calibration=spec), data)
    for path, value in TRUE.items():
        assert result.values[path] == pytest.approx(value, rel=0.02), path
    assert (result.worst("fit") or 0) < 0.005
    assert (result.worst("holdout") or 0) < 0.005
    assert {r.role for r in result.rows} == {"fit", "holdout"}
    assert all(r.role == "holdout" for r in result.rows if r.row.day > date(2021, 6, 30))


def test_calibration_is_reproducible(round1: Scenario) -> None:
    assert round1.calibration is not None
    spec = dataclasses.replace(round1.calibration, starts=2)
    first = calibrate(dataclasses.replace(round1, calibration=spec))
    again = calibrate(dataclasses.replace(first.scenario, calibration=spec))
    assert first.values == again.values


def test_round1_fit_and_holdout_within_tolerance(round1: Scenario) -> None:
    """The bundled fitted values: every fit row ±10%, every holdout row ±20%."""
    rows = predict_rows(
        round1, load_published(SCENARIOS / "data" / "round1.csv"), round1.calibration
    )
    assert {r.role for r in rows} == {"fit", "holdout"}
    for row in rows:
        limit = 0.10 if row.role == "fit" else 0.20
        assert abs(row.error) <= limit, (row.row.day, row.row.kind, row.error)


def test_fitted_values_are_written_into_the_file_keeping_comments() -> None:
    text = (SCENARIOS / "round1.toml").read_text()
    updated = update_scenario_text(
        text, {"demand.apply_share": 0.4321, "campaign.events.point_start.multiplier": 2.5}
    )
    assert "apply_share = 0.4321" in updated
    assert "# fitted: share of card holders who ever apply" in updated
    block = updated[updated.index('key = "point_start"') :]
    assert block[: block.index("[[")].count("multiplier = 2.5") == 1
    assert len(updated.splitlines()) == len(text.splitlines())


def test_calibrate_command_writes_the_scenario_and_report(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, folder)
    scenario = folder / "round1.toml"
    scenario.write_text(scenario.read_text().replace("starts = 8", "starts = 2"))
    app = typer.Typer()
    app.command("calibrate")(calibrate_command)
    app.command("other")(lambda: None)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["calibrate", str(scenario), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "holdout" in (out / "calibration.md").read_text()
    assert (out / "calibration.png").stat().st_size > 0
    assert load_scenario(scenario).demand.apply_share == pytest.approx(0.8066, rel=0.01)
    strict = CliRunner().invoke(
        app, ["calibrate", str(scenario), "--out", str(out), "--max-holdout-error", "0.01"]
    )
    assert strict.exit_code == 1
    bad = CliRunner().invoke(app, ["calibrate", str(scenario), "--data", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2
    assert "no such data file" in bad.output


def test_round2_is_predicted_from_round1_behaviour(round1: Scenario) -> None:
    """Round 2 fits nothing: round 1's behaviour, round 2's card supply, events, measures."""
    round2 = load_scenario(SCENARIOS / "round2.toml")
    assert round2.demand == round1.demand
    assert round2.calibration is not None
    assert round2.calibration.fit == ()
    result = calibrate(round2)
    assert result.values == {}
    kinds = {r.row.kind for r in result.rows}
    assert kinds == {
        "applications", "applications_spend", "applications_health", "applications_account"
    }  # fmt: skip
    assert {m.kind for m in round2.campaign.measures} == kinds - {"applications"}
    # The card deadline caps the pool: nobody beyond apply_share x 92.99 M cards.
    assert all(r.simulated <= round1.demand.apply_share * 92_990_000 for r in result.rows)
    # Predictions exist at every published row, after the deadline too.
    assert max(r.row.day for r in result.rows) == date(2023, 9, 30)


def test_a_runs_check_covers_round2s_measures() -> None:
    from mynahil.simulator.calibration import calibration_check, measure_shares, published_for

    round2 = load_scenario(SCENARIOS / "round2.toml")
    summary = {"cumulative_applications": {"2022-06-30": 1_000_000, "2022-07-04": 3_000_000}}
    rows = calibration_check(summary, *published_for(round2), measures=measure_shares(round2))
    by_kind = {r.label: r for r in rows if r.period == "2022-07-04"}
    assert by_kind["applications by 2022-07-04"].simulated == 3_000_000
    assert by_kind["applications_health by 2022-07-04"].simulated == round(3_000_000 * 0.925)
    assert by_kind["applications_account by 2022-07-04"].published == 2_910_000
    later = [r for r in rows if r.period > "2022-07-04"]
    assert later
    assert all(r.simulated is None and r.role == "holdout" for r in later)
