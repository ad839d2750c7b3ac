"""Per-second latency and failure histograms by stage, gathered where requests are made.

In master/worker mode each worker sends what it gathered since its last report to the master
with Locust's regular stats report (``report_to_master`` / ``worker_report``), so the master's
timeline covers every worker; locally the same collector feeds it directly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mynahil.stats import percentile

__all__ = ["Timeline", "histogram_p95", "rounded_ms", "stage_of"]


def stage_of(name: str) -> str:
    """``reserve: id`` -> ``reserve``."""
    return name.split(":", 1)[0].strip()


def rounded_ms(ms: float) -> int:
    """Two significant digits above 100 ms, like Locust's own histograms."""
    value = round(ms)
    if value < 100:
        return value
    digits = len(str(value)) - 2
    return int(round(value, -digits))


def histogram_p95(histogram: dict[int, int]) -> float | None:
    """The 95th percentile of a {value: count} histogram; None when it is empty."""
    return percentile(list(histogram), 95, list(histogram.values()), default=None)


class Timeline:
    """second (unix) -> stage -> histogram of response times, and failures; users sampled."""

    def __init__(self) -> None:
        self.latency: dict[int, dict[str, dict[int, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self.failures: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.users: dict[int, int] = {}
        self._pending: list[tuple[int, str, int, bool]] = []

    # --- where requests are made ----------------------------------------------------------

    def on_request(self, name: str, response_time: float, failed: bool, when: float) -> None:
        entry = (int(when), stage_of(name), rounded_ms(response_time), failed)
        self._pending.append(entry)

    def drain(self) -> list[list[Any]]:
        """What was gathered since the last drain, as plain lists (msgpack-friendly)."""
        pending, self._pending = self._pending, []
        return [list(row) for row in pending]

    # --- where the timeline is kept -------------------------------------------------------

    def absorb(self, rows: list[list[Any]]) -> None:
        for second, stage, ms, failed in rows:
            if failed:
                self.failures[int(second)][str(stage)] += 1
            else:
                self.latency[int(second)][str(stage)][int(ms)] += 1

    def sample_users(self, when: float, users: int) -> None:
        self.users[int(when)] = users

    def rows(self, started: float) -> list[dict[str, Any]]:
        """One row per second of the run: users, rps, failures/s, p95 (all and per stage)."""
        seconds = set(self.latency) | set(self.failures) | set(self.users)
        if not seconds:
            return []
        first = int(started)
        out: list[dict[str, Any]] = []
        for second in range(first, max(seconds) + 1):
            stages = self.latency.get(second, {})
            merged: dict[int, int] = defaultdict(int)
            for histogram in stages.values():
                for ms, n in histogram.items():
                    merged[ms] += n
            failures = sum(self.failures.get(second, {}).values())
            row: dict[str, Any] = {
                "t_s": second - first,
                "users": self.users.get(second),
                "rps": sum(merged.values()) + failures,
                "failures_per_s": failures,
                "p95_ms": histogram_p95(merged),
            }
            for stage, histogram in sorted(stages.items()):
                row[f"{stage}_p95_ms"] = histogram_p95(histogram)
            out.append(row)
        return out
