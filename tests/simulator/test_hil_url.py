"""``simulate --hil N --platform URL --ca DIR``: the HIL holders reserve on a running server."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mynahil.cli import app
from tests.support import MYNAHIL, free_port

from .conftest import SCENARIOS

LAUNCH_WEEK = str(SCENARIOS / "launch-week.toml")


def _hil(out: Path, *extra: str) -> dict[str, object]:
    result = subprocess.run(
        [*MYNAHIL, "simulate", LAUNCH_WEEK, "--hil", "5", "--seed", "3", "--quiet",
         "--executor", "serial", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hil: dict[str, object] = json.loads((out / "summary.json").read_text())["hil"]
    return hil


@pytest.mark.slow
def test_hil_against_a_running_platform(platform: tuple[str, Path], tmp_path: Path) -> None:
    url, ca = platform
    before = _registered(ca)
    remote = _hil(tmp_path / "remote", "--platform", url, "--ca", str(ca))
    assert remote["target"] == f"the platform at {url}"
    assert remote["people"] == 5
    failures = remote["failures"]
    assert isinstance(failures, dict)
    tries = sum(t for t, _ in failures.values())
    failed = sum(f for _, f in failures.values())
    assert tries == 5
    assert failed < 5
    median = remote["median_ms"]
    assert isinstance(median, float)
    assert math.isfinite(median)
    assert median > 0
    # The measured latency replaced the assumed one in the run.
    assert remote["assumed_median_ms"] == 150.0
    # The cards came from the platform's own CA folder (and the platform trusted them).
    assert _registered(ca) == before + 5 * 2
    # Same seed in-process: the same holders drawn per channel; only where they reserve differs
    # (the card faults depend on the card's answers and timing, so failures may differ).
    local = _hil(tmp_path / "local")
    assert local["target"] == "the reference platform, in-process over HTTP"
    local_failures = local["failures"]
    assert isinstance(local_failures, dict)
    assert {k: v[0] for k, v in local_failures.items()} == {k: v[0] for k, v in failures.items()}


@pytest.mark.slow
def test_reservations_reach_the_platform(platform: tuple[str, Path], tmp_path: Path) -> None:
    """The server's audit log grows by one issuance per successful HIL holder."""
    url, ca = platform
    db = Path(str(ca).removesuffix("jlis")) / "platform.db"
    before = _audit_count(db)
    remote = _hil(tmp_path / "remote", "--platform", url, "--ca", str(ca))
    failures = remote["failures"]
    assert isinstance(failures, dict)
    succeeded = 5 - sum(f for _, f in failures.values())
    assert succeeded > 0
    assert _audit_count(db) >= before + succeeded
    assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200


def _registered(ca: Path) -> int:
    path = ca / "registry.json"
    if not path.exists():
        return 0
    return len(json.loads(path.read_text())["certificates"])


def _audit_count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return int(connection.execute("select count(*) from audit_log").fetchone()[0])


def test_platform_needs_ca_and_a_url(tmp_path: Path) -> None:
    cases = [
        (["--hil", "2", "--platform", "http://127.0.0.1:9"], "--ca"),
        (["--hil", "2", "--ca", str(tmp_path)], "--ca"),
        (["--hil", "2", "--platform", "http://127.0.0.1:9", "--ca", str(tmp_path)], "--ca"),
        (["--hil", "2", "--platform", "127.0.0.1:9", "--ca", str(tmp_path)], "--platform"),
    ]
    for args, option in cases:
        result = CliRunner().invoke(app, ["simulate", LAUNCH_WEEK, "--quiet", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: "), lines
        assert option in lines[0], lines


def test_an_unreachable_platform_is_an_input_error(tmp_path: Path) -> None:
    from mynahil.reference_impl.jlis import JlisCA

    JlisCA.create(tmp_path / "ca")
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app,
        ["simulate", LAUNCH_WEEK, "--quiet", "--hil", "2", "--platform", url, "--ca",
         str(tmp_path / "ca"), "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"--platform {url}" in result.output
