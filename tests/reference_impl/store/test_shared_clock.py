"""The business clock under --as-of is the database's: every process on it reads one time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.clock_sql import shared_clock

AS_OF = datetime(2020, 9, 1, 3, 0, tzinfo=UTC)
WALL = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Wall:
    """The wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> datetime:
        return self.now


def test_processes_started_apart_with_one_as_of_read_one_time(store_url: str) -> None:
    wall = Wall()
    with SqlStore.open(store_url) as first_store, SqlStore.open(store_url) as later_store:
        first = shared_clock(first_store, AS_OF, wall=wall)
        wall.now += timedelta(seconds=42)  # the second instance starts 42 s later
        later = shared_clock(later_store, AS_OF, wall=wall)
        assert first() == later() == AS_OF + timedelta(seconds=42)
        wall.now += timedelta(days=3)  # and a restart continues where the others are
        assert shared_clock(later_store, AS_OF, wall=wall)() == first()


def test_another_as_of_starts_the_replay_again(store_url: str) -> None:
    wall = Wall()
    with SqlStore.open(store_url) as store:
        shared_clock(store, AS_OF, wall=wall)
        wall.now += timedelta(hours=1)
        round_two = AS_OF.replace(year=2022)
        assert shared_clock(store, round_two, wall=wall)() == round_two
        assert shared_clock(store, round_two, wall=wall)() == round_two
