"""The operator part of ``mynahil simulate``: run after the sign-up, written beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..engine import SimulationResult
from ..scenario import Scenario, ScenarioError
from ..sweep import Sweep
from .report import write_operator_outputs
from .run import simulate_operators
from .sweep import OperatorSweep, OperatorTarget, run_operator_sweep

__all__ = ["OperatorPlan", "run_operator_part"]


class OperatorPlan:
    """What ``mynahil simulate`` does with the operator part, from its options."""

    def __init__(
        self, enabled: bool, sweep: Sweep | None, target: OperatorTarget | None, hil: int
    ) -> None:
        self.enabled = enabled
        self.sweep = sweep
        self.target = target
        self.hil = hil
        self.outcome: OperatorSweep | None = None
        #: --operator-platform URL and --operator-db URL (None, None: in-process).
        self.hil_target: tuple[str | None, str | None] = (None, None)

    @classmethod
    def of(
        cls,
        scenario: Scenario,
        sweeps: list[Sweep],
        target: str | None,
        flag: bool | None,
        hil: int,
    ) -> tuple[OperatorPlan, list[Sweep]]:
        """``flag``: --operators/--no-operators (None: when the scenario has an operator part);
        a sweep over ``operators.*`` is the operator part's, with its own target metrics
        (the sweeps left for the sign-up model come back beside the plan)."""
        from .sweep import parse_operator_target

        sweep = sweeps[0] if sweeps and sweeps[0].field.startswith("operators.") else None
        if sweep is not None and not target:
            raise ScenarioError(
                f'--sweep {sweep.field}: give a --target, e.g. "decision_p99<=60s@2020-09-01"'
            )
        goal = parse_operator_target(target) if sweep is not None and target else None
        needed = sweep is not None or hil > 0
        if scenario.operators is None:
            if flag or needed:
                raise ScenarioError(
                    'operators: the scenario has no operator part; add operators = "FILE" '
                    "(see scenarios/operator-load/round1.toml)"
                )
            return cls(False, None, None, 0), sweeps
        if flag is False and needed:
            raise ScenarioError(
                "--no-operators: a sweep over operators.* or --hil-operators needs the operators"
            )
        rest = [] if sweep is not None else sweeps
        return cls(flag is not False, sweep, goal, hil), rest

    def exit_if_failed(self) -> None:
        """A sweep whose target no swept value meets: say so and exit 1."""
        if self.outcome is not None and self.outcome.best is None:
            print(f"error: no value of {self.outcome.field} meets {self.outcome.target.text}",
                  file=sys.stderr)  # fmt: skip
            raise typer.Exit(1)

    def run(
        self, scenario: Scenario, signup: SimulationResult, out: Path, *, seed: int, quiet: bool
    ) -> tuple[dict[str, Any], str] | None:
        if not self.enabled:
            return None
        try:
            part, self.outcome = run_operator_part(
                scenario, signup, out, seed=seed, sweep=self.sweep, target=self.target,
                hil=self.hil, hil_target=self.hil_target, quiet=quiet,
            )  # fmt: skip
        except (ScenarioError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        return part


def run_operator_part(
    scenario: Scenario,
    signup: SimulationResult,
    out: Path,
    *,
    seed: int,
    sweep: Sweep | None,
    target: OperatorTarget | None,
    hil: int = 0,
    hil_target: tuple[str | None, str | None] = (None, None),
    quiet: bool = False,
) -> tuple[tuple[dict[str, Any], str], OperatorSweep | None]:
    """Spending, reports and the intake on the first replication's applications; the
    summary and HTML section for the report, and the sweep's outcome (if any)."""
    hil_report = None
    if hil:
        from .hil import measure_operators

        url, db = hil_target
        measured = measure_operators(scenario, hil, seed=seed, platform_url=url, db_url=db)
        scenario = measured.apply(scenario)
        hil_report = measured.as_dict()
    applications = signup.replications[0].applications
    run = simulate_operators(scenario, applications, seed=seed)
    outcome = None
    if sweep is not None and target is not None:
        outcome = run_operator_sweep(scenario, run, sweep, target, seed=seed)
    summary, html = write_operator_outputs(out, run, outcome, hil_report)
    if not quiet:
        line = (
            f"operators: {summary['reports_decided']:,.0f} reports decided; busiest day "
            f"{summary['busiest_day']}: p99 {summary['busiest_day_decision_p99_s']:.2f} s; "
            f"points {summary['points_granted_net']:,.0f} yen"
        )
        if summary.get("budget_used") is not None:
            line += f" ({summary['budget_used']:.1%} of the budget)"
        print(line, file=sys.stderr)
        if outcome is not None:
            best = outcome.best
            print(
                f"sweep {outcome.field}: "
                + (f"smallest value meeting {outcome.target.text}: {best:g}" if best is not None
                   else f"no value meets {outcome.target.text}"),
                file=sys.stderr,
            )  # fmt: skip
    return (summary, html), outcome
