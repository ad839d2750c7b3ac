"""Races: one winner, a clear answer for everyone else, invariants intact (each store)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.points import Decision, Outcome, Report, TransactionKind
from tests.reference_impl.points.harness import OPERATOR, SERVICE, PointsPlatform

RACERS = 8
SEPT = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)


def race(work: list[Callable[[], object]]) -> list[object]:
    """Run every callable at once; each result is its value or the MyKeyError it raised."""
    start = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work[index]()
        except MyKeyError as refusal:
            results[index] = refusal

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def codes(results: list[object]) -> list[str]:
    return sorted(r.code if isinstance(r, MyKeyError) else "ok" for r in results)


def test_one_person_applying_with_many_accounts_at_once_gets_one(points: PointsPlatform) -> None:
    person = points.person(apply=False)
    accounts = [points.books.open_account(f"a{i}") for i in range(RACERS)]
    proofs = [points.card_proof(person.holder) for _ in accounts]
    results = race(
        [
            partial(points.points.apply, p, SERVICE, a.account_id, a.security_code)
            for p, a in zip(proofs, accounts, strict=True)
        ]
    )
    assert codes(results) == ["already_applied"] * (RACERS - 1) + ["ok"]
    assert points.points.violations() == []


def test_many_people_applying_with_one_account_at_once_one_wins(points: PointsPlatform) -> None:
    people = [points.person(apply=False) for _ in range(RACERS)]
    account = points.books.open_account("shared")
    proofs = [points.card_proof(p.holder) for p in people]
    results = race(
        [
            partial(points.points.apply, p, SERVICE, account.account_id, account.security_code)
            for p in proofs
        ]
    )
    assert codes(results) == ["account_taken"] * (RACERS - 1) + ["ok"]


def test_concurrent_id_changes_have_one_winner(points: PointsPlatform) -> None:
    person = points.person(apply=False)
    tokens = [points.login_card(person.holder).token for _ in range(RACERS)]
    results = race([partial(points.service.change_mykey_id, t) for t in tokens])
    assert codes(results) == ["ok"] + ["session_invalid"] * (RACERS - 1)
    winner = next(r for r in results if isinstance(r, str))
    assert points.login_card(person.holder).mykey_id == winner


def test_revocation_racing_reports_leaves_no_points_after_it(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    token = points.login_card(person.holder).token

    def report(n: int) -> Decision:
        tx = f"race-{n}"
        return points.points.report(OPERATOR, [
            Report(f"k-{tx}", tx, SERVICE, person.account_id, TransactionKind.CHARGE, 400,
                   SEPT + timedelta(seconds=n))
        ])[0]  # fmt: skip

    work: list[Callable[[], object]] = [partial(report, n) for n in range(RACERS)]
    work.append(lambda: points.service.revoke(token))
    results = race(work)
    outcomes = {r.outcome for r in results[:-1] if isinstance(r, Decision)}
    assert outcomes <= {Outcome.GRANTED, Outcome.MYKEY_REVOKED}
    assert results[-1] is None  # the revocation went through
    assert report(99).outcome is Outcome.MYKEY_REVOKED  # and holds from then on
    assert points.points.violations() == []
