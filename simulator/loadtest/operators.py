"""Operator replay: registered operators send signed report batches following the scenario's
report curve (time-compressed), with Locust; afterwards the ledger is checked.

Setup needs the platform's database (``--db``, as platform staff use ``mynahil operator
register``): N operators, each with its own Ed25519 key, a payment service and holders whose
round-1 applications chose it, go straight into the store (only the operator path is
measured, as in benchmarks/bench_points.py). The operators' identities are written to
``operators.json`` in the output folder so that Locust workers started with ``--operators-file``
send as the same operators.

Each Locust user is one operator at a time: every ``pacing`` seconds it books ``batch``
charges on its holders' accounts and sends them as one signed ``POST .../transactions``; now
and then (``resend_share``) it sends its last acknowledged batch again, as an operator does
after a lost answer. The curve is the operator model's reports per hour (spending of the
scenario's arrival curve), compressed and scaled to ``max_users``. Request names are
``report: <operator>`` so Locust keeps latency per operator.

After the run: the ledger invariants (``violations()``) and, for every acknowledged report,
exactly one decision stored under its idempotency key with the answer the operator got.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..demand import arrival_curve
from ..operators.registration import OperatorIdentity
from ..operators.run import prepare_load
from ..scenario import Scenario
from .plan import LoadPlan, Tick

__all__ = [
    "Acknowledged",
    "build_operator_plan",
    "check_decided_once",
    "load_identities",
    "save_identities",
]


def save_identities(path: Path, identities: list[OperatorIdentity]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**i.__dict__, "accounts": list(i.accounts)} for i in identities]
    path.write_text(json.dumps(rows, indent=1) + "\n")
    path.chmod(0o600)  # private keys


def load_identities(path: Path) -> list[OperatorIdentity]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--operators-file {path}: {exc}") from None
    return [
        OperatorIdentity(r["operator_id"], r["service_id"], r["private_key"],
                         tuple(r["accounts"]))
        for r in rows
    ]  # fmt: skip


def build_operator_plan(
    scenario: Scenario,
    start: datetime,
    hours: float,
    *,
    compress: float,
    max_users: int,
    pacing: float,
    batch: int,
) -> LoadPlan:
    """The scenario's reports per hour (its arrival curve applying, then spending) from
    ``start``, compressed; users = report rate x pacing / batch, scaled to ``max_users``."""
    if scenario.operators is None:
        raise ValueError('the scenario has no operator part (operators = "FILE")')
    if hours <= 0 or compress <= 0 or pacing <= 0 or batch < 1 or max_users < 1:
        raise ValueError("--hours, --compress, --pacing, --batch and --max-users must be > 0")
    run_start = datetime.combine(scenario.run.start, datetime.min.time())
    curve = arrival_curve(scenario, run_start, run_start + timedelta(hours=scenario.run.hours))
    applications = np.array([people for _, people in curve], dtype=np.float64)
    _, load, _ = prepare_load(scenario, applications, seed=1)
    per_hour = load.reports.sum(axis=0)
    first = (start - run_start).total_seconds() / 3600
    if first < 0 or first + hours > len(per_hour):
        raise ValueError(f"--start/--hours: outside the scenario's run ({scenario.run.start} "
                         f"to {scenario.run.end})")  # fmt: skip
    seconds = max(1, math.ceil(hours * 3600 / compress))
    rates = []
    for second in range(seconds):
        hour = int(first + second * compress / 3600)
        rates.append(float(per_hour[min(hour, len(per_hour) - 1)]))
    peak = max(rates)
    wanted = peak * compress / 3600 * pacing / batch
    scale = min(1.0, max_users / wanted) if wanted > 0 else 1.0
    ticks = []
    for second, rate in enumerate(rates):
        users = rate * compress / 3600 * pacing / batch * scale
        ticks.append(Tick(second, max(1, round(users)) if rate > 0 else 0,
                          float(max(1, max_users)), rate))  # fmt: skip
    return LoadPlan(start, hours, compress, pacing, max_users, scale, peak, ticks)


@dataclass
class Acknowledged:
    """What this process's operators sent and the platform acknowledged (thread-safe)."""

    #: idempotency key -> (operator, points answered)
    answers: dict[str, tuple[str, int]] = field(default_factory=dict)
    replays: int = 0
    _fresh: list[tuple[str, str, int]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, operator: str, decisions: list[dict[str, Any]]) -> None:
        with self._lock:
            for d in decisions:
                if d.get("replayed"):
                    self.replays += 1
                key = str(d["idempotency_key"])
                if key not in self.answers:
                    self.answers[key] = (operator, int(d["points"]))
                    self._fresh.append((key, operator, int(d["points"])))

    def drain(self) -> dict[str, Any]:
        """What was acknowledged since the last drain (a worker sends it to its master)."""
        with self._lock:
            fresh, self._fresh = self._fresh, []
            replays, self.replays = self.replays, 0
        return {"answers": fresh, "replays": replays}

    def absorb(self, data: dict[str, Any]) -> None:
        """A worker's drained acknowledgements, on the master."""
        with self._lock:
            for key, operator, points in data.get("answers", []):
                self.answers.setdefault(str(key), (str(operator), int(points)))
            self.replays += int(data.get("replays", 0))


def check_decided_once(db_url: str, acknowledged: Acknowledged) -> list[str]:
    """Ledger invariants, then: every acknowledged key decided once, with the answer given."""
    from mynahil.reference_impl.platform import build_platform

    platform = build_platform(db_url, None)
    try:
        problems = [str(v) for v in platform.points.violations()]
        by_operator: dict[str, list[str]] = {}
        for key, (operator, _) in acknowledged.answers.items():
            by_operator.setdefault(operator, []).append(key)
        for operator, keys in by_operator.items():
            with platform.store.transaction() as uow:
                stored = uow.transactions_by_key(operator, keys)
            for key in keys:
                row = stored.get(key)
                if row is None:
                    problems.append(f"{operator}: acknowledged report {key} has no decision")
                elif row.points != acknowledged.answers[key][1]:
                    problems.append(
                        f"{operator}: report {key} stored {row.points} points, answered "
                        f"{acknowledged.answers[key][1]}"
                    )
    finally:
        platform.close()
    return problems


def batch_body(
    identity: OperatorIdentity, size: int, at: datetime, rng: random.Random
) -> tuple[bytes, list[str]]:
    """A batch of charges on the operator's holders; the body and its idempotency keys."""
    reports = []
    for _ in range(size):
        tx = f"{identity.operator_id}-{secrets.token_hex(8)}"
        reports.append({
            "idempotency_key": f"k-{tx}", "transaction_id": tx,
            "service_id": identity.service_id, "account_id": rng.choice(identity.accounts),
            "kind": "charge", "amount": rng.randint(100, 6000),
            "occurred_at": (at + timedelta(seconds=rng.random())).isoformat(),
        })  # fmt: skip
    body = json.dumps({"transactions": reports}).encode()
    return body, [str(r["idempotency_key"]) for r in reports]
