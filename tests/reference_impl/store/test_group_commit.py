"""Group commit on a SQLite file that syncs each commit (``?synchronous=full``): units of
work that queue for the writer share one commit, each returns only once its writes are
committed, and a unit that fails takes only its own writes with it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, event

from mynahil.reference_impl.audit import AuditEvent
from mynahil.reference_impl.mykey.model import Challenge, Purpose
from mynahil.reference_impl.mykey.ports import StoreUnavailable
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.sql import ORPHAN_CHECK
from tests.support import examples

NOW = datetime(2020, 9, 1, tzinfo=UTC)


class Unit:
    """One unit of work on its own thread: adds a challenge named after it, or fails after
    adding it; notes whether the challenge was committed when ``transaction()`` returned."""

    def __init__(self, store: SqlStore, path: Path, name: str, *, fails: bool = False) -> None:
        self.store, self.path, self.name, self.fails = store, path, name, fails
        self.inside = threading.Event()
        self.committed_on_return: bool | None = None

    def run(self, hold: Callable[[], object] = lambda: None) -> None:
        with self.store.transaction() as uow:
            self.inside.set()
            uow.add_challenge(Challenge(self.name, b"n", Purpose.ISSUE, NOW, NOW + timedelta(1)))
            uow.audit(AuditEvent("test", "ok", None, {"unit": self.name}), NOW)
            hold()
            if self.fails:
                raise ValueError(f"{self.name} fails")
        self.committed_on_return = committed(self.path, self.name)


def committed(path: Path, name: str) -> bool:
    """Whether another connection (so: committed) sees the challenge."""
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT count(*) FROM challenges WHERE challenge_id = ?", (name,))
        return bool(row.fetchone()[0])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.001)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "g.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.open(f"sqlite:///{path}?synchronous=full")
    try:
        yield opened
    finally:
        opened.dispose()


def count_commits(store: SqlStore) -> list[None]:
    commits: list[None] = []

    @event.listens_for(store.engine, "commit")
    def _count(_connection: Connection) -> None:
        commits.append(None)

    return commits


def queue_behind(store: SqlStore, first: Unit, others: list[Unit]) -> list[Future[None]]:
    """Run ``first``, and the others while it holds the writer, so that they queue for it;
    ``first`` finishes its work once all of them are queued."""
    threads = ThreadPoolExecutor(len(others) + 1)
    queued = threading.Event()
    futures = [threads.submit(first.run, lambda: queued.wait(10))]
    first.inside.wait(10)
    for unit in others:
        futures.append(threads.submit(unit.run))
    wait_until(lambda: len(store._arrivals) == len(others), "the others queue")  # white box
    queued.set()
    threads.shutdown(wait=True)
    return futures


def run_queued(store: SqlStore, path: Path, count: int) -> tuple[int, list[Unit]]:
    """``count`` units, all but the first queued behind it: the commits they took, and them."""
    commits = count_commits(store)
    units = [Unit(store, path, f"u{n}") for n in range(count)]
    for future in queue_behind(store, units[0], units[1:]):
        future.result()
    return len(commits), units


def test_units_that_queue_for_the_writer_share_one_commit(store: SqlStore, path: Path) -> None:
    commits, units = run_queued(store, path, 4)
    assert commits == 1
    # None returned before its writes were committed, though three waited for a fourth.
    assert [u.committed_on_return for u in units] == [True] * 4
    assert store.verify_audit()[1] is None


def test_a_unit_that_fails_in_a_group_takes_only_its_own_writes(
    store: SqlStore, path: Path
) -> None:
    first, failing, last = (
        Unit(store, path, "a"),
        Unit(store, path, "b", fails=True),
        Unit(store, path, "c"),
    )
    futures = queue_behind(store, first, [failing, last])
    with pytest.raises(ValueError, match="b fails"):
        futures[1].result()
    futures[0].result()
    futures[2].result()
    assert (committed(path, "a"), committed(path, "b"), committed(path, "c")) == (
        True,
        False,
        True,
    )


def disk_full_at_commit(store: SqlStore) -> Callable[[Connection], None]:
    """Every commit fails as on a full disk (until the listener it returns is removed)."""

    @event.listens_for(store.engine, "commit")
    def _disk_full(_connection: Connection) -> None:
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = sqlite3.SQLITE_FULL
        error.sqlite_errorname = "SQLITE_FULL"
        raise error

    return _disk_full


def test_a_failed_commit_fails_every_unit_it_held(store: SqlStore, path: Path) -> None:
    _disk_full = disk_full_at_commit(store)
    units = [Unit(store, path, f"u{n}") for n in range(3)]
    futures = queue_behind(store, units[0], units[1:])
    for future in futures:  # nothing acknowledged that was not written
        with pytest.raises(StoreUnavailable) as failed:
            future.result()
        assert failed.value.kind == "full"
    event.remove(store.engine, "commit", _disk_full)
    assert not any(committed(path, u.name) for u in units)
    with store.transaction() as uow:  # the store goes on
        uow.add_challenge(Challenge("after", b"n", Purpose.ISSUE, NOW, NOW + timedelta(1)))
    assert committed(path, "after")


def test_a_failing_unit_that_commits_its_group_raises_its_own_error(
    store: SqlStore, path: Path
) -> None:
    """The last unit of a queue fails, and so commits the others' work; when that commit
    fails too, the others are told so, and the failing unit raises its own error (its
    caller's exception, not the commit's)."""
    disk_full_at_commit(store)
    first, failing = Unit(store, path, "a"), Unit(store, path, "b", fails=True)
    futures = queue_behind(store, first, [failing])
    with pytest.raises(ValueError, match="b fails"):
        futures[1].result()
    with pytest.raises(StoreUnavailable) as failed:
        futures[0].result()
    assert failed.value.kind == "full"
    assert not committed(path, "a")
    assert not committed(path, "b")


def test_a_unit_whose_queue_mate_gave_up_commits_its_group_itself(
    store: SqlStore, path: Path
) -> None:
    """A unit leaves the group open for one that queued; were that one to give up (its busy
    timeout ran out at that moment), the unit notices and commits the group itself."""
    commits = count_commits(store)
    store._arrivals.append(None)  # white box: a queue-mate that will never come
    try:
        started = time.monotonic()
        unit = Unit(store, path, "alone")
        unit.run()
        waited = time.monotonic() - started
    finally:
        store._arrivals.pop()
    assert unit.committed_on_return
    assert len(commits) == 1
    assert waited >= ORPHAN_CHECK  # it did wait for the queue-mate first


def test_a_unit_that_must_not_wait_commits_the_group_at_once(store: SqlStore, path: Path) -> None:
    """A unit on the server's event loop (not_waiting) never waits for others' work: it joins
    an open group and commits it, or commits its own, before it returns."""
    commits = count_commits(store)
    store._arrivals.append(None)  # white box: another unit queues
    try:
        started = time.monotonic()
        with store.not_waiting():
            Unit(store, path, "on-the-loop").run()
        waited = time.monotonic() - started
    finally:
        store._arrivals.pop()
    assert committed(path, "on-the-loop")
    assert len(commits) == 1
    assert waited < ORPHAN_CHECK


def test_a_unit_inside_another_on_the_same_thread_is_refused_at_once(path: Path) -> None:
    """It would share the enclosing unit's transaction and could commit it half done; before
    groups it waited out the busy timeout for SQLite's lock its own thread held."""
    store = SqlStore.open(f"sqlite:///{path}?synchronous=full", busy_timeout=5)
    try:
        started = time.monotonic()
        with store.transaction() as outer:
            outer.add_challenge(Challenge("outer", b"n", Purpose.ISSUE, NOW, NOW + timedelta(1)))
            with pytest.raises(RuntimeError, match="inside another"), store.transaction():
                pass
        assert time.monotonic() - started < 1
        assert committed(path, "outer")
    finally:
        store.dispose()


def test_without_a_sync_at_each_commit_every_unit_commits_alone(path: Path) -> None:
    """With SQLite's default synchronous=NORMAL a commit syncs nothing; sharing it would only
    keep units waiting (see ``sql._syncs_each_commit``)."""
    store = SqlStore.open(f"sqlite:///{path}")
    try:
        commits, units = run_queued(store, path, 3)
        assert commits == 3
        assert [u.committed_on_return for u in units] == [True] * 3
    finally:
        store.dispose()


def test_any_mix_of_failing_and_succeeding_units_commits_exactly_the_others(
    store: SqlStore, path: Path
) -> None:
    """Whichever units of a queue fail (the first, alone in its transaction, or any that
    joined a group), exactly the others' writes and audit records are committed, the hash
    chain unbroken across the SAVEPOINTs rolled back."""
    runs = iter(range(10_000))

    @settings(
        max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(first_fails=st.booleans(), others_fail=st.lists(st.booleans(), min_size=1, max_size=5))
    def check(first_fails: bool, others_fail: list[bool]) -> None:
        run = next(runs)
        first = Unit(store, path, f"r{run}-0", fails=first_fails)
        others = [
            Unit(store, path, f"r{run}-{n + 1}", fails=fails) for n, fails in enumerate(others_fail)
        ]
        futures = queue_behind(store, first, others)
        for unit, future in zip([first, *others], futures, strict=True):
            if unit.fails:
                with pytest.raises(ValueError, match=f"{unit.name} fails"):
                    future.result()
            else:
                future.result()
                assert unit.committed_on_return
            assert committed(path, unit.name) is not unit.fails
        audited = {r.details["unit"] for r in store.audit_records() if r.details}
        assert {u.name for u in [first, *others] if not u.fails} <= audited
        assert not {u.name for u in [first, *others] if u.fails} & audited

    check()
    assert store.verify_audit()[1] is None
