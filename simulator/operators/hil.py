"""Operators in the loop: N sampled services report signed batches to the reference platform.

Each sampled service (drawn by share of applicants) becomes a real operator of the sample
payment service (``mynahil.reference_impl.operator``): its own Ed25519 key registered with the
platform, its books, holders whose applications chose it (set up in the platform's store,
as benchmarks/bench_points.py does, so only the operator path is measured), and charges or
purchases booked and reported in signed batches of its kind's batch size (at most
``max_batch``) over HTTP to the reference platform served in-process on loopback, or to a
running one (``--operator-platform URL --operator-db URL``: operators are registered in its
database, as platform staff do with ``mynahil operator register``). The
latency of every batch is measured; a least-squares line through (batch size, latency)
gives the platform's per-report and per-request cost, which then replace the scenario's
``ingestion.per_report_ms`` and ``ingestion.request_overhead_ms``; the share of batches that
failed replaces ``ingestion.error_share`` (those requests are sent again, like a timeout).
Afterwards the platform's ledger invariants are checked.
"""

from __future__ import annotations

import base64
import math
import random
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..operator_model import OperatorModel, ServiceKind
from ..scenario import Scenario, ScenarioError, set_field
from .registration import OperatorIdentity, set_up_operators

__all__ = ["MeasuredOperators", "measure_operators"]

AS_OF = datetime(2020, 9, 1, 3, 0, tzinfo=UTC)


@dataclass
class MeasuredOperators:
    operators: int
    target: str
    #: (reports in the batch, seconds from send to answer)
    batches: list[tuple[int, float]] = field(default_factory=list)
    failures: int = 0
    reports: int = 0
    violations: list[str] = field(default_factory=list)
    assumed: dict[str, float] = field(default_factory=dict)
    fitted: dict[str, float] = field(default_factory=dict)

    def fit(self) -> tuple[float, float]:
        """(request overhead ms, per-report ms) from a least-squares line; floors at 0."""
        sizes = np.array([n for n, _ in self.batches], dtype=np.float64)
        seconds = np.array([s for _, s in self.batches], dtype=np.float64)
        if len(sizes) < 2 or np.ptp(sizes) == 0:
            per = float(seconds.sum() / max(sizes.sum(), 1)) * 1000
            return 0.0, per
        slope, intercept = np.polyfit(sizes, seconds, 1)
        per_report = max(float(slope) * 1000, 1e-6)
        overhead = max(float(intercept) * 1000, 0.0)
        return overhead, per_report

    def apply(self, scenario: Scenario) -> Scenario:
        if scenario.operators is None or not self.batches:
            return scenario
        ing = scenario.operators.ingestion
        self.assumed = {
            "operators.ingestion.request_overhead_ms": ing.request_overhead_ms,
            "operators.ingestion.per_report_ms": ing.per_report_ms,
            "operators.ingestion.error_share": ing.error_share,
        }
        overhead, per_report = self.fit()
        sent = len(self.batches) + self.failures
        self.fitted = {
            "operators.ingestion.request_overhead_ms": overhead,
            "operators.ingestion.per_report_ms": per_report,
            "operators.ingestion.error_share": min(0.99, self.failures / sent) if sent else 0.0,
        }
        for name, value in self.fitted.items():
            scenario = set_field(scenario, name, value)
        return scenario

    def as_dict(self) -> dict[str, Any]:
        rows = [
            [name, f"{self.assumed.get(name, math.nan):.3g}", f"{value:.3g}"]
            for name, value in self.fitted.items()
        ]
        rows.append(
            ["failed batches", "-", f"{self.failures} of {len(self.batches) + self.failures}"]
        )
        rows.append(["ledger invariants", "hold", "hold" if not self.violations else "BROKEN"])
        return {
            "operators": self.operators,
            "target": self.target,
            "reports": self.reports,
            "batches": len(self.batches),
            "failures": self.failures,
            "rows": rows,
            "violations": self.violations[:5],
            "latencies_ms": [s * 1000 for _, s in self.batches],
        }


def measure_operators(
    scenario: Scenario,
    count: int,
    *,
    seed: int = 1,
    platform_url: str | None = None,
    db_url: str | None = None,
    batches_per_operator: int = 6,
    max_batch: int = 200,
    holders_per_operator: int = 50,
) -> MeasuredOperators:
    """Run ``count`` sampled operators for real: against the reference platform served
    in-process on loopback (SQLite in a temp folder), or against ``platform_url`` whose
    database ``db_url`` the operators and their holders are registered in (staff setup)."""
    from mynahil.reference_impl.gateways import LocalAccountCheck
    from mynahil.reference_impl.platform import build_platform, serving

    model = scenario.operators
    if model is None:
        raise ScenarioError("--hil-operators: the scenario has no operator part")
    if platform_url is not None and db_url is None:
        raise ScenarioError(
            "--operator-platform needs --operator-db: the platform's database, where the "
            "sampled operators and their holders are registered"
        )
    rng = random.Random(seed)
    services = model.services()
    chosen = rng.choices(services, weights=[s for _, _, s in services], k=count)
    with ExitStack() as stack:
        if platform_url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            db_url = f"sqlite:///{tmp}/hil.db"
            platform = build_platform(db_url, None, accounts=LocalAccountCheck({}), as_of=AS_OF)
            stack.callback(platform.close)
            platform_url = stack.enter_context(serving(platform.app))
            target = "the reference platform, in-process over HTTP (SQLite)"
        else:
            target = platform_url
        assert db_url is not None
        measured = MeasuredOperators(count, target)
        identities = set_up_operators(db_url, count, holders_per_operator, seed)
        for identity, (_, kind, _) in zip(identities, chosen, strict=True):
            _one_operator(platform_url, identity, kind, model, rng, measured,
                          batches_per_operator, max_batch)  # fmt: skip
        checker = build_platform(db_url, None)
        try:
            measured.violations = [str(v) for v in checker.points.violations()]
        finally:
            checker.close()
    return measured


def _one_operator(
    base: str,
    identity: OperatorIdentity,
    kind: ServiceKind,
    model: OperatorModel,
    rng: random.Random,
    measured: MeasuredOperators,
    batches: int,
    max_batch: int,
) -> None:
    """The sample operator's books and signed client: batches of its kind's size."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mynahil.reference_impl.operator import OperatorBooks, OperatorClient
    from mynahil.reference_impl.points import PointsError, TransactionKind
    from mynahil.reference_impl.points.signing import Signer

    # Not the sandbox's sample_operator: an identity registered beforehand reports to a platform
    # served elsewhere; it needs no app of its own.
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(identity.private_key))
    books = OperatorBooks(identity.operator_id, identity.service_id)
    client = OperatorClient.connect(base, Signer(identity.operator_id, key))
    spender = model.spending.by_grant[kind.grant]
    kind_of = TransactionKind.CHARGE if kind.grant == "charge" else TransactionKind.PURCHASE
    size = max(1, min(kind.batch_size, max_batch))
    try:
        for b in range(batches):
            # Sizes vary so that a line through (size, latency) is well defined.
            this = max(1, round(size * (b + 1) / batches))
            # Before the served clock (AS_OF): a report dated after it is future_dated.
            at = AS_OF - timedelta(hours=1) + timedelta(seconds=b)
            batch = [
                books.book(rng.choice(identity.accounts),
                           max(1, round(rng.lognormvariate(math.log(spender.median_yen),
                                                           spender.sigma))),
                           at, kind=kind_of)
                for _ in range(this)
            ]  # fmt: skip
            start = time.perf_counter()
            try:
                decisions = client.report(batch)
            except PointsError:
                measured.failures += 1
                continue
            measured.batches.append((len(batch), time.perf_counter() - start))
            measured.reports += len(decisions)
            books.answered(decisions)
    finally:
        client.http.close()
