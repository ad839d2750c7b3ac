"""The budget of anonymous refusals in the database: one budget for every process on it, with
the in-memory budget's answers (property-tested in tests/security/test_audit_flood.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from mynahil.reference_impl.audit import RefusalBudget
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.budget_sql import SqlRefusalBudget

PER_WINDOW, SUMMARY_EVERY, MAX_SOURCES = 3, 7, 3
START = datetime(2020, 9, 10, tzinfo=UTC)


def test_two_processes_share_one_budget_with_the_in_memory_answers(store_url: str) -> None:
    """Refusals from five sources (two more than the budget tells apart) over four minutes,
    sent alternately to two instances (two engines): each answer is the one a single
    in-memory budget gives the same refusals in the same order."""
    rng = random.Random(17)
    events = sorted(
        (rng.uniform(0, 240), rng.choice("abcde")) for _ in range(160)
    )  # (second, source)
    memory = RefusalBudget(
        per_window=PER_WINDOW, summary_every=SUMMARY_EVERY, max_sources=MAX_SOURCES
    )
    with SqlStore.open(store_url) as one, SqlStore.open(store_url) as two:
        instances = [
            SqlRefusalBudget(
                store.engine,
                "mykey",
                per_window=PER_WINDOW,
                summary_every=SUMMARY_EVERY,
                max_sources=MAX_SOURCES,
            )
            for store in (one, two)
        ]
        other_scope = SqlRefusalBudget(one.engine, "points", per_window=PER_WINDOW)
        for n, (second, source) in enumerate(events):
            now = START + timedelta(seconds=second)
            expected = memory.admit(source, now)
            assert instances[n % 2].admit(source, now) == expected, (n, source, second)
        # Another service's budget is its own: its first refusal is recorded.
        assert other_scope.admit("a", START + timedelta(seconds=240)) == 0


def test_a_long_source_is_kept_apart_by_its_digest(store_url: str) -> None:
    with SqlStore.open(store_url) as store:
        budget = SqlRefusalBudget(store.engine, "points", per_window=1)
        long_a, long_b = "a" * 300, "a" * 299 + "b"
        assert budget.admit(long_a, START) == 0
        assert budget.admit(long_b, START) == 0  # not the same source as long_a
        assert budget.admit(long_a, START) is None
