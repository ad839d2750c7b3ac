"""SimPy load model of the MyNa Point sign-up: holders, channels, spots, windows, platform.

Capacity planners describe a peak in a scenario file and ask how long people wait, how many
lock their PIN and how many servers keep the platform fast::

    from mynahil.simulator import load_scenario, run, summarize
    result = run(load_scenario("scenarios/launch-week.toml"), seed=1)
    summary = summarize(result)
"""

from __future__ import annotations

from .calibration import CalibrationRow, calibration_check
from .demand import arrival_curve
from .engine import SimulationResult, open_executor, run
from .metrics import hourly_table, summarize
from .scenario import Scenario, ScenarioError, load_scenario, set_field

__all__ = [
    "CalibrationRow",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "arrival_curve",
    "calibration_check",
    "hourly_table",
    "load_scenario",
    "open_executor",
    "run",
    "set_field",
    "summarize",
]
