"""32 reporters at once for the same person never push the total past the cap (each store)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from mynahil.reference_impl.points import Decision, Outcome, Report, TransactionKind
from tests.reference_impl.points.harness import OPERATOR, SERVICE, PointsPlatform

SEPT = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)
REPORTERS = 32


def _race(work: Callable[[int], list[Decision]]) -> list[Decision]:
    start = threading.Barrier(REPORTERS)
    results: list[Decision] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        start.wait()
        try:
            decided = work(index)
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)
            return
        with lock:
            results.extend(decided)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(REPORTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def _charge(account: str, index: int, n: int, *, key: str | None = None) -> Report:
    tx = key or f"t{index}-{n}"
    return Report(f"k-{tx}", tx, SERVICE, account, TransactionKind.CHARGE, 1000, SEPT)


def test_concurrent_reports_for_one_person_stop_at_the_cap(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    decisions = _race(
        lambda i: points.points.report(
            OPERATOR, [_charge(person.account_id, i, n) for n in range(3)]
        )
    )
    assert len(decisions) == REPORTERS * 3
    assert sum(d.points for d in decisions) == 5000  # 96 * 250 asked for; the cap holds
    assert max(d.total_after or 0 for d in decisions) == 5000
    assert points.points.violations() == []


def test_the_same_report_sent_by_many_at_once_grants_once(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    decisions = _race(
        lambda i: points.points.report(OPERATOR, [_charge(person.account_id, i, 0, key="same")])
    )
    granted = [d for d in decisions if not d.replayed]
    assert len(granted) == 1
    assert {(d.outcome, d.points) for d in decisions} == {(Outcome.GRANTED, 250)}
    assert points.points.violations() == []
