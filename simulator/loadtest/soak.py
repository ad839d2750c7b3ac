"""A soak: a bounded mixed load on the platform for a while, watching latency and memory.

Holders reserve MyKey IDs and apply with their cards, a payment operator reports charges,
refunds and retried batches, all over HTTP on loopback against a platform replaying round 1.
Every second the server's resident memory is sampled (this process when the server runs in a
thread; the ``mynahil serve`` child through ``/proc`` when it runs apart). At the end the
figures go to ``soak.json``, the per-second series to ``soak.csv``, a plot to ``soak.png`` and
a summary to ``report.md``; the ledger's invariants and the audit chain are checked.

Cards come from the platform's own J-LIS, issued before the load starts from a small
:class:`~mynahil.reference_impl.jlis.KeyPool` (no RSA key generation per card). The load is bounded:
a fixed set of cards and accounts, so the database grows only by what the operations write.

Expected refusals (a wrong security code is refused as ``account_not_verified``; a charge past
the cap is ``capped``) are counted apart from errors; anything else a client did not expect,
any 5xx or transport failure, is an error.
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from mynahil.card import MyNumberCard
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PIN
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle
from mynahil.reference_impl.operator import OperatorBooks, OperatorClient
from mynahil.reference_impl.platform import (
    ReferencePlatform,
    build_platform,
    serve_process,
    serving,
    shifted_clock,
    wait_healthy,
)
from mynahil.reference_impl.points import (
    Decision,
    Outcome,
    Report,
    TransactionKind,
)
from mynahil.reference_impl.sandbox import sample_operator
from mynahil.stats import percentile

__all__ = [
    "AS_OF",
    "OPERATIONS",
    "SoakConfig",
    "SoakResult",
    "drift_mb_per_minute",
    "rss_mb",
    "run_soak",
]

AS_OF = datetime(2020, 9, 10, 3, tzinfo=UTC)
"""Round 1 replayed: 2020-09-10, noon in Japan."""
OPERATOR, SERVICE = "soak-pay-inc", "soak-pay"
PIN = DEFAULT_PIN
OPERATIONS = ("reserve", "apply", "refused_apply", "report", "refund", "retry")
# How often each operation is drawn; one that has nothing to act on yet falls back to reserve.
WEIGHTS = {"reserve": 20, "apply": 14, "refused_apply": 4, "report": 40, "refund": 14, "retry": 8}
EXPECTED_OUTCOMES = {
    "report": {Outcome.GRANTED, Outcome.CAPPED},
    "refund": {Outcome.TAKEN_BACK},
}


@dataclass(frozen=True)
class SoakConfig:
    """What to run.

    :param duration: seconds of load (after preparation).
    :param out: the folder the files go to (created).
    :param db_url: the platform's database; default a SQLite file in ``out``. With
        ``platform_url`` it must be the server's own database (the operator is registered
        there and the invariants are read from it).
    :param platform_url: an already running platform; None serves one here.
    :param jlis_folder: the J-LIS CA folder the platform trusts; default ``out/jlis``.
    :param subprocess: serve with ``mynahil serve`` in a child process (its RSS via /proc)
        instead of a thread in this process.
    :param workers: concurrent client threads.
    :param cards: cards issued beforehand (default 40 per worker).
    """

    duration: float
    out: Path
    db_url: str | None = None
    platform_url: str | None = None
    jlis_folder: Path | None = None
    subprocess: bool = False
    workers: int = 4
    cards: int | None = None
    seed: int = 1
    key_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"duration: must be positive, got {self.duration}")
        if self.workers < 1:
            raise ValueError(f"workers: must be at least 1, got {self.workers}")
        if self.platform_url and not self.db_url:
            raise ValueError("platform_url: give the server's database too (db_url)")
        if self.platform_url and self.subprocess:
            raise ValueError("subprocess: a platform_url is already running; choose one")
        if self.cards is not None and self.cards < self.workers:
            raise ValueError(f"cards: at least one per worker ({self.workers}), got {self.cards}")


@dataclass
class SoakResult:
    figures: dict[str, Any]
    problems: list[str]
    out: Path

    @property
    def ok(self) -> bool:
        return not self.problems


# --- measurement ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB; None when it cannot be read (it has gone)."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)
    except psutil.Error:
        return None


def drift_mb_per_minute(seconds: list[float], rss: Sequence[float | None]) -> float:
    """Least-squares slope of RSS over the second half of the run, in MB per minute.

    The first half holds the warm-up (imports, caches, pools filling); a leak shows as a
    slope that stays positive after it.
    """
    points = [(t, m) for t, m in zip(seconds, rss, strict=True) if m]
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return 0.0
    xs, ys = [t for t, _ in half], [m for _, m in half]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope * 60


@dataclass
class Sample:
    op: str
    at: float  # seconds since the load started, at completion
    latency: float  # seconds
    ok: bool


@dataclass
class Recorder:
    """Everything the workers observed; appends are atomic under the GIL, counters locked."""

    start: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def timed(self, op: str) -> Iterator[None]:
        began = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        except Exception as exc:  # every failure is recorded, and the load goes on
            self.error(f"{op}: {type(exc).__name__}: {exc}")
        finally:
            now = time.perf_counter()
            self.samples.append(Sample(op, now - self.start, now - began, ok))

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def refused(self, code: str) -> None:
        with self.lock:
            self.refusals[code] = self.refusals.get(code, 0) + 1

    def outcome(self, decision: Decision) -> None:
        with self.lock:
            key = decision.outcome.value + (" (replayed)" if decision.replayed else "")
            self.outcomes[key] = self.outcomes.get(key, 0) + 1


class Unexpected(Exception):
    """An answer the soak did not expect (counted as an error)."""


# --- the load -------------------------------------------------------------------------------


@dataclass
class Holder:
    state: CardState
    card: MyNumberCard
    mykey_id: str | None = None
    account: str | None = None


@dataclass
class Charge:
    report: Report
    refunded: int = 0
    answer: Decision | None = None


@dataclass
class Worker:
    """One client thread: its own cards, HTTP clients and random stream."""

    holders: list[Holder]
    holder_client: PlatformClient
    operator_client: OperatorClient
    books: OperatorBooks
    clock: Callable[[], datetime]
    recorder: Recorder
    rng: random.Random
    charges: list[Charge] = field(default_factory=list)
    batches: list[list[Report]] = field(default_factory=list)

    def run(self, deadline: float) -> None:
        ops, weights = list(WEIGHTS), list(WEIGHTS.values())
        while time.perf_counter() < deadline:
            op = self.rng.choices(ops, weights)[0]
            action = getattr(self, f"_{op}")
            if not action(dry=True):
                op, action = "reserve", self._reserve
            with self.recorder.timed(op):
                action(dry=False)

    def _reserve(self, *, dry: bool) -> bool:
        if dry:
            return True
        fresh = [h for h in self.holders if h.mykey_id is None]
        holder = self.rng.choice(fresh or self.holders)
        mykey_id = self.holder_client.reserve(holder.card, PIN)
        if holder.mykey_id is not None and mykey_id != holder.mykey_id:
            raise Unexpected(f"the same card got {mykey_id}, first {holder.mykey_id}")
        holder.mykey_id = mykey_id
        return True

    def _unapplied(self) -> list[Holder]:
        return [h for h in self.holders if h.mykey_id is not None and h.account is None]

    def _apply(self, *, dry: bool) -> bool:
        candidates = self._unapplied()
        if dry or not candidates:
            return bool(candidates)
        holder = self.rng.choice(candidates)
        account = self.books.open_account(holder.state.holder.name)
        answer = self.holder_client.apply(
            holder.card, PIN, SERVICE, account.account_id, account.security_code
        )
        if answer.get("account_id") not in (None, account.account_id):
            raise Unexpected(f"applied for {account.account_id}, answered {answer}")
        holder.account = account.account_id
        return True

    def _refused_apply(self, *, dry: bool) -> bool:
        candidates = self._unapplied()
        if dry or not candidates:
            return bool(candidates)
        holder = self.rng.choice(candidates)
        account = self.books.open_account(holder.state.holder.name)
        wrong = f"{(int(account.security_code) + 1) % 1_000_000:06d}"
        try:
            self.holder_client.apply(holder.card, PIN, SERVICE, account.account_id, wrong)
        except ClientRefusal as refusal:
            if refusal.code != "account_not_verified":
                raise
            self.recorder.refused(refusal.code)
            return True
        raise Unexpected("a wrong security code was accepted")

    def _applied(self) -> list[str]:
        return [h.account for h in self.holders if h.account is not None]

    def _decide(self, op: str, reports: list[Report]) -> list[Decision]:
        decisions = self.operator_client.report(reports)
        self.books.answered(decisions)
        for decision in decisions:
            self.recorder.outcome(decision)
            if decision.outcome not in EXPECTED_OUTCOMES[op]:
                raise Unexpected(f"{decision.transaction_id}: {decision.outcome.value}")
        return decisions

    def _report(self, *, dry: bool) -> bool:
        accounts = self._applied()
        if dry or not accounts:
            return bool(accounts)
        batch = [
            self.books.book(self.rng.choice(accounts), self.rng.randint(100, 8000), self.clock())
            for _ in range(self.rng.randint(1, 10))
        ]
        decisions = self._decide("report", batch)
        self.charges.extend(Charge(r, answer=d) for r, d in zip(batch, decisions, strict=True))
        self.batches.append(batch)
        del self.batches[:-50]
        return True

    def _refund(self, *, dry: bool) -> bool:
        open_charges = [c for c in self.charges if c.refunded < c.report.amount]
        if dry or not open_charges:
            return bool(open_charges)
        charge = self.rng.choice(open_charges)
        left = charge.report.amount - charge.refunded
        amount = left if self.rng.random() < 0.3 else self.rng.randint(1, left)
        refund = self.books.book(
            charge.report.account_id,
            amount,
            self.clock(),
            kind=TransactionKind.REFUND,
            refund_of=charge.report.transaction_id,
        )
        self._decide("refund", [refund])
        charge.refunded += amount
        return True

    def _retry(self, *, dry: bool) -> bool:
        """A batch sent again (a lost answer): every decision comes back replayed, unchanged."""
        if dry or not self.batches:
            return bool(self.batches)
        batch = self.rng.choice(self.batches)
        first = {c.report.idempotency_key: c.answer for c in self.charges}
        for decision in self.operator_client.report(batch):
            self.recorder.outcome(decision)
            before = first.get(decision.idempotency_key)
            if not decision.replayed or before is None or decision.points != before.points:
                raise Unexpected(f"retried {decision.idempotency_key}: {decision}")
        return True


# --- the servers ----------------------------------------------------------------------------


def _server_clock(url: str) -> Callable[[], datetime]:
    """The platform's business time, read from /v1/health, running on here; 2 s ahead so a
    charge booked right after an application is never "before" it."""
    with PlatformClient.connect(url, timeout=5) as platform:
        return shifted_clock(platform.business_time() + timedelta(seconds=2))


def _issue_cards(
    platform: ReferencePlatform, count: int, seed: int, cache: Path | None
) -> list[CardState]:
    pool = KeyPool.generate(16, seed=seed, cache_dir=cache)
    return lifecycle.issue_many(
        platform.jlis.ca, platform.jlis.registry, count, holders=random.Random(seed),
        issued_on=date(2020, 7, 1), keys=pool,
    )  # fmt: skip


# --- the run --------------------------------------------------------------------------------

Progress = Callable[[float, dict[str, Any]], None]
"""Called about once a second with the elapsed load time and the latest per-second row."""


def run_soak(config: SoakConfig, progress: Progress | None = None) -> SoakResult:
    """Prepare, load for ``config.duration`` seconds, check, and write the files."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    folder = config.jlis_folder or out / "jlis"
    db_url = config.db_url or f"sqlite:///{out / 'soak.db'}"
    platform = build_platform(db_url, folder, as_of=AS_OF)
    recorder = Recorder()
    rows: list[dict[str, Any]] = []
    try:
        states = _issue_cards(platform, config.cards or 40 * config.workers, config.seed,
                              config.key_cache)  # fmt: skip
        with ExitStack() as stack:
            if config.platform_url:
                url, pid, mode = config.platform_url.rstrip("/"), 0, "external"
                wait_healthy(url, None)
            elif config.subprocess:
                url, process = stack.enter_context(
                    serve_process(db_url, folder, as_of=AS_OF.date().isoformat(),
                                  log=out / "serve.log")
                )  # fmt: skip
                pid = process.pid
                mode = "subprocess"
            else:
                url, pid, mode = stack.enter_context(serving(platform.app)), os.getpid(), "thread"
            clock = _server_clock(url)
            operator = stack.enter_context(
                sample_operator(
                    platform, url, operator_id=OPERATOR, operator_name="Soak Pay Inc.",
                    service_id=SERVICE, service_name="Soak Pay", clock=clock,
                )
            )  # fmt: skip
            workers = [
                Worker(
                    [Holder(s, emulated_reader(s)) for s in states[i :: config.workers]],
                    PlatformClient.connect(url, timeout=30),
                    OperatorClient.connect(url, operator.signer, timeout=30),
                    operator.books,
                    clock,
                    recorder,
                    random.Random(config.seed * 1000 + i),
                )
                for i in range(config.workers)
            ]
            recorder.start = time.perf_counter()
            deadline = recorder.start + config.duration
            threads = [
                threading.Thread(target=w.run, args=(deadline,), name=f"soak-{i}", daemon=True)
                for i, w in enumerate(workers)
            ]
            for thread in threads:
                thread.start()
            rows = _sample(recorder, pid, threads, progress)
            for worker in workers:
                worker.holder_client.http.close()
                worker.operator_client.http.close()
        problems = list(platform.points.violations())
        audited, broken = platform.store.verify_audit()
        if broken is not None:
            problems.append(f"audit chain broken after {audited} records: {broken}")
        figures = _figures(config, recorder, rows, mode, audited)
        problems += [f"{n} unexpected errors" for n in [len(recorder.errors)] if n]
        figures["problems"] = problems
        _write(out, figures, rows)
        return SoakResult(figures, problems, out)
    finally:
        platform.close()


def _sample(
    recorder: Recorder, pid: int, threads: list[threading.Thread], progress: Progress | None
) -> list[dict[str, Any]]:
    """One row a second until the workers are done: RSS, operations, latency, errors."""
    rows: list[dict[str, Any]] = []
    seen = 0
    second = 0
    while any(t.is_alive() for t in threads):
        second += 1
        target = recorder.start + second
        for thread in threads:
            thread.join(timeout=max(0.0, target - time.perf_counter()))
        fresh = recorder.samples[seen:]
        seen += len(fresh)
        latencies = [s.latency * 1000 for s in fresh]
        row: dict[str, Any] = {
            "second": round(time.perf_counter() - recorder.start, 3),
            "rss_mb": _rounded(rss_mb(pid)) if pid else None,
            "ops": len(fresh),
            "errors": sum(not s.ok for s in fresh),
            "p50_ms": round(percentile(latencies, 50, default=0.0), 3),
            "p99_ms": round(percentile(latencies, 99, default=0.0), 3),
        }
        for op in OPERATIONS:
            row[f"{op}_ops"] = sum(s.op == op for s in fresh)
        rows.append(row)
        if progress is not None:
            progress(row["second"], row)
    return rows


def _figures(
    config: SoakConfig, recorder: Recorder, rows: list[dict[str, Any]], mode: str, audited: int
) -> dict[str, Any]:
    samples = recorder.samples
    elapsed = max((s.at for s in samples), default=0.0) or config.duration
    per_op: dict[str, Any] = {}
    for op in OPERATIONS:
        latencies = [s.latency * 1000 for s in samples if s.op == op]
        per_op[op] = {
            "count": len(latencies),
            "errors": sum(not s.ok for s in samples if s.op == op),
            "per_second": round(len(latencies) / elapsed, 2),
            "p50_ms": round(percentile(latencies, 50, default=0.0), 3),
            "p95_ms": round(percentile(latencies, 95, default=0.0), 3),
            "p99_ms": round(percentile(latencies, 99, default=0.0), 3),
            "max_ms": round(max(latencies, default=0.0), 3),
        }
    rss = [r["rss_mb"] for r in rows if r["rss_mb"] is not None]
    sampled = "this process" if mode == "thread" else "server" if rss else "none"
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "duration_s": round(elapsed, 2),
        "workers": config.workers,
        "operations": len(samples),
        "throughput_per_s": round(len(samples) / elapsed, 2),
        "errors": len(recorder.errors),
        "first_errors": recorder.errors[:20],
        "expected_refusals": dict(recorder.refusals),
        "outcomes": dict(sorted(recorder.outcomes.items())),
        "per_operation": per_op,
        # A platform served elsewhere is not sampled: its memory is unknown, never 0 MB.
        "memory": {
            "sampled": sampled,
            "rss_start_mb": rss[0] if rss else None,
            "rss_end_mb": rss[-1] if rss else None,
            "rss_max_mb": max(rss) if rss else None,
            "drift_mb_per_min": round(
                drift_mb_per_minute([r["second"] for r in rows], [r["rss_mb"] for r in rows]), 3
            )
            if rss
            else None,
        },
        "audit_records": audited,
    }


# --- the files ------------------------------------------------------------------------------


def _write(out: Path, figures: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    (out / "soak.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    with (out / "soak.csv").open("w", newline="", encoding="utf-8") as file:
        columns = ["second", "rss_mb", "ops", "errors", "p50_ms", "p99_ms",
                   *(f"{op}_ops" for op in OPERATIONS)]  # fmt: skip
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    _plot(out / "soak.png", rows, figures["memory"]["sampled"])
    (out / "report.md").write_text(_report(figures), encoding="utf-8")


def _plot(path: Path, rows: list[dict[str, Any]], sampled: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [r["second"] for r in rows]
    if sampled == "none":  # the platform runs elsewhere: latency only, no invented memory line
        figure, latency = plt.subplots(1, 1, figsize=(9, 3.5))
        bottom = latency
    else:
        figure, (latency, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        bottom.plot(seconds, [r["rss_mb"] for r in rows], color="tab:red")
        bottom.set_ylabel("server RSS (MB)" if sampled == "server" else f"RSS of {sampled} (MB)")
        bottom.grid(alpha=0.3)
    latency.plot(seconds, [r["p50_ms"] for r in rows], label="p50")
    latency.plot(seconds, [r["p99_ms"] for r in rows], label="p99")
    latency.set_ylabel("latency per operation (ms)")
    latency.legend()
    latency.grid(alpha=0.3)
    bottom.set_xlabel("seconds into the load")
    figure.suptitle(
        "mynahil soak: latency"
        + (" (server memory not sampled)" if sampled == "none" else " and server memory")
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _rounded(mb: float | None) -> float | None:
    return None if mb is None else round(mb, 2)


def _memory_line(memory: dict[str, Any]) -> str:
    if memory["sampled"] == "none":
        return (
            "Memory: not sampled — the platform runs elsewhere (soak it with --subprocess, or "
            "here, to watch its memory)."
        )
    return (
        f"Memory ({memory['sampled']}): {memory['rss_start_mb']} MB at the start, "
        f"{memory['rss_end_mb']} MB at the end, {memory['rss_max_mb']} MB at most; drift over "
        f"the second half {memory['drift_mb_per_min']} MB/min."
    )


def _report(figures: dict[str, Any]) -> str:
    memory = figures["memory"]
    lines = [
        "# Soak",
        "",
        f"{figures['operations']:,} operations in {figures['duration_s']} s "
        f"({figures['throughput_per_s']}/s) from {figures['workers']} workers, server "
        f"{figures['mode']}; {figures['errors']} errors, expected refusals "
        f"{figures['expected_refusals'] or 'none'}.",
        "",
        "| operation | count | per s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op, f in figures["per_operation"].items():
        lines.append(
            f"| {op} | {f['count']} | {f['per_second']} | {f['p50_ms']} | {f['p95_ms']} | "
            f"{f['p99_ms']} | {f['max_ms']} | {f['errors']} |"
        )
    lines += [
        "",
        _memory_line(memory),
        "",
        f"Outcomes: {figures['outcomes']}.",
        "",
        f"Audit records: {figures['audit_records']}. Problems: "
        + ("; ".join(figures["problems"]) or "none (ledger invariants and audit chain hold)")
        + ".",
        "",
        "![latency and memory](soak.png)",
        "",
    ]
    if figures["first_errors"]:
        lines += ["First errors:", "", *(f"- {e}" for e in figures["first_errors"]), ""]
    return "\n".join(lines)
