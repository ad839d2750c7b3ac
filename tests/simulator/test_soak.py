"""The soak (simulator/loadtest/soak.py): a short mixed load against a real server on loopback.

Reservations, applications (and refused ones), report batches, refunds and retried batches
from several client threads against the platform replaying round 1, beside the sample
operator. Nothing but the expected refusals may go wrong; the ledger's invariants and the
audit chain hold afterwards; the figures, the per-second series, the plot and the report are
written. The same run through the command line, with the server as a child process.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mynahil.cli.soak import soak
from mynahil.reference_impl.platform import build_platform, serve_process
from mynahil.simulator.loadtest.soak import (
    AS_OF,
    OPERATIONS,
    SoakConfig,
    drift_mb_per_minute,
    run_soak,
)
from mynahil.stats import percentile
from tests.support import TIMING_SENSITIVE

DURATION = 12.0

pytestmark = TIMING_SENSITIVE


@pytest.fixture(scope="module")
def key_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("soak-keys")


def test_a_short_soak_has_no_errors_and_a_sound_ledger(tmp_path: Path, key_cache: Path) -> None:
    out = tmp_path / "soak"
    result = run_soak(SoakConfig(DURATION, out, workers=4, cards=80, key_cache=key_cache))
    figures = result.figures

    assert result.problems == [], figures["first_errors"]
    assert figures["errors"] == 0
    assert set(figures["expected_refusals"]) <= {"account_not_verified"}
    # "(replayed)": the operator client sent a batch again after a busy answer (503) or a lost
    # one, and the platform answered it from its store; a refund batch can be among them.
    assert set(figures["outcomes"]) <= {
        "granted", "capped", "taken_back",
        "granted (replayed)", "capped (replayed)", "taken_back (replayed)",
    }  # fmt: skip
    for op in OPERATIONS:
        assert figures["per_operation"][op]["count"] > 0, f"{op} never ran"
        assert figures["per_operation"][op]["errors"] == 0
        assert 0 < figures["per_operation"][op]["p50_ms"] <= figures["per_operation"][op]["p99_ms"]
    assert figures["duration_s"] >= DURATION
    assert figures["throughput_per_s"] > 10
    assert figures["audit_records"] > figures["per_operation"]["reserve"]["count"]
    assert figures["memory"]["rss_start_mb"] > 0

    assert json.loads((out / "soak.json").read_text())["operations"] == figures["operations"]
    with (out / "soak.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= DURATION
    assert sum(int(r["ops"]) for r in rows) == figures["operations"]
    assert all(float(r["rss_mb"]) > 0 for r in rows)
    assert (out / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Problems: none" in (out / "report.md").read_text()


def test_the_command_soaks_a_server_in_a_child_process(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(soak)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["--duration", "4", "--out", str(out), "--workers", "2", "--subprocess"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "soak.json").read_text())
    assert figures["mode"] == "subprocess"
    assert figures["errors"] == 0
    assert figures["memory"]["sampled"] == "server"
    assert figures["memory"]["rss_max_mb"] > 0  # read from the child's /proc entry
    assert (out / "serve.log").exists()
    assert figures["problems"] == []


def test_the_command_refuses_a_platform_url_without_its_database(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(soak)
    result = CliRunner().invoke(
        app, ["--duration", "2", "--out", str(tmp_path), "--platform", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "--platform" in result.output
    assert not (tmp_path / "soak.json").exists()


def test_a_platform_served_elsewhere_is_not_sampled_as_zero_mb(
    tmp_path: Path, key_cache: Path
) -> None:
    """Against a platform at a URL the soak cannot see the server's memory: it says so
    (no 0 MB series, no drift figure, a latency-only plot) instead of plotting a flat 0."""
    db_url = f"sqlite:///{tmp_path / 'remote.db'}"
    folder = tmp_path / "jlis"
    build_platform(db_url, folder, as_of=AS_OF)  # the CA and schema the server will use
    with serve_process(db_url, folder, as_of=AS_OF.date().isoformat(),
                       log=tmp_path / "serve.log") as (url, _process):  # fmt: skip
        out = tmp_path / "soak"
        result = run_soak(
            SoakConfig(
                4.0,
                out,
                db_url=db_url,
                platform_url=url,
                jlis_folder=folder,
                workers=2,
                cards=20,
                key_cache=key_cache,
            )
        )
    memory = result.figures["memory"]
    assert result.problems == [], result.figures["first_errors"]
    assert memory == {
        "sampled": "none", "rss_start_mb": None, "rss_end_mb": None, "rss_max_mb": None,
        "drift_mb_per_min": None,
    }  # fmt: skip
    with (out / "soak.csv").open() as file:
        assert {row["rss_mb"] for row in csv.DictReader(file)} == {""}
    report = (out / "report.md").read_text()
    assert "Memory: not sampled" in report
    assert "MB/min" not in report


def test_percentiles_and_drift() -> None:
    assert percentile([], 99, default=0.0) == 0.0  # the soak's figure for a quiet second
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 100) == 2.0
    seconds = [float(s) for s in range(120)]
    assert drift_mb_per_minute(seconds, [100.0] * 120) == 0.0
    # 0.5 MB a second in the second half, whatever the warm-up did: 30 MB/min.
    rss = [200.0 - s for s in range(60)] + [100.0 + 0.5 * s for s in range(60)]
    assert drift_mb_per_minute(seconds, rss) == pytest.approx(30.0)
