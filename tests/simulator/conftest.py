from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.simulator import Scenario, load_scenario
from tests.support import MYNAHIL, free_port, running

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="session")
def round1() -> Scenario:
    return load_scenario(SCENARIOS / "round1.toml")


@pytest.fixture(scope="session")
def launch_week() -> Scenario:
    return load_scenario(SCENARIOS / "launch-week.toml")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mynahil serve`` on SQLite, its CA in a temp folder, replaying launch day."""
    folder = tmp_path_factory.mktemp("platform")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*MYNAHIL, "serve", "--db", f"sqlite:///{folder}/platform.db", "--ca",
            str(folder / "jlis"), "--port", str(port), "--as-of", "2020-07-01"]  # fmt: skip
    with running(argv, f"{url}/v1/health"):
        yield url, folder / "jlis"
