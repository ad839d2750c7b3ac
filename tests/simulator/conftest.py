from __future__ import annotations

from pathlib import Path

import pytest

from simulator import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="session")
def round1() -> Scenario:
    return load_scenario(SCENARIOS / "round1.toml")


@pytest.fixture(scope="session")
def launch_week() -> Scenario:
    return load_scenario(SCENARIOS / "launch-week.toml")
