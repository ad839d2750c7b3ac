"""SQLite takes one writer at a time: this process's writers queue in the store, not in
SQLite's busy handler (which sleeps 1, 2, 5, 10 ms... between its tries)."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from mynahil.reference_impl.mykey.model import Challenge, Purpose
from mynahil.reference_impl.mykey.ports import StoreUnavailable, WriterBusy
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.engine import WAL_CHECKPOINT_PAGES

NOW = datetime(2020, 9, 1, tzinfo=UTC)


def test_threads_writing_at_once_never_meet_sqlites_busy_handler(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}")

    @event.listens_for(store.engine, "connect")
    def _no_busy_wait(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Were two of this process's writers to meet in SQLite, the second would fail at once.
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    store.dispose()

    def write(thread: int) -> None:
        for n in range(25):
            with store.transaction() as uow:
                uow.add_challenge(
                    Challenge(f"t{thread}-{n}", b"nonce", Purpose.ISSUE, NOW, NOW + timedelta(1))
                )

    try:
        with ThreadPoolExecutor(8) as threads:
            list(threads.map(write, range(8)))  # raises StoreUnavailable("busy") if they met
        with store.transaction() as uow:
            assert all(uow.consume_challenge(f"t{t}-24", NOW) for t in range(8))
    finally:
        store.dispose()


def test_the_wal_is_copied_back_at_its_threshold_and_not_before(tmp_path: Path) -> None:
    """Commits let the WAL grow to WAL_CHECKPOINT_PAGES (SQLite's default would copy it back
    at 1,000 pages), and not much further: the commit that passes it checkpoints, and the
    WAL starts again from its beginning."""
    database = tmp_path / "w.db"
    store = SqlStore.open(f"sqlite:///{database}")
    page = 4096
    blob = bytes(16 * page)  # a transaction writes ~17 pages
    try:
        with store.engine.begin() as connection:
            page = int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())
            connection.exec_driver_sql("CREATE TABLE filler (b BLOB)")
        wal = Path(f"{database}-wal")
        frame = page + 24  # a WAL frame: the page and its header

        def fill(pages: int) -> None:
            for _ in range(pages // 17):
                with store.engine.begin() as connection:
                    connection.exec_driver_sql("INSERT INTO filler VALUES (?)", (blob,))

        fill(WAL_CHECKPOINT_PAGES // 2)
        assert wal.stat().st_size > 3 * 1000 * frame  # past SQLite's default: not copied back
        fill(WAL_CHECKPOINT_PAGES)
        # Copied back once it held the threshold: the file was reused from its start, so it
        # is no longer than the threshold and the transaction that passed it.
        assert wal.stat().st_size <= (WAL_CHECKPOINT_PAGES + 40) * frame
    finally:
        store.dispose()


def _challenge(name: str) -> Challenge:
    return Challenge(name, b"nonce", Purpose.ISSUE, NOW, NOW + timedelta(1))


def _stored(store: SqlStore, name: str) -> bool:
    with store.transaction() as uow:
        return uow.consume_challenge(name, NOW) is not None


def test_not_waiting_gives_up_before_writing_when_another_thread_writes(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}")
    writing, done = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with store.transaction() as uow:
            uow.add_challenge(_challenge("held"))
            writing.set()
            done.wait(10)

    try:
        with ThreadPoolExecutor(1) as other:
            holder = other.submit(hold_the_writer)
            assert writing.wait(10)
            started = time.monotonic()
            with pytest.raises(WriterBusy), store.not_waiting(), store.transaction() as uow:
                uow.add_challenge(_challenge("refused"))
            assert time.monotonic() - started < 1  # at once, not after the busy timeout
            done.set()
            holder.result()
        assert not _stored(store, "refused")
        assert _stored(store, "held")
        # With the writer free, the first transaction runs; the ones after it wait as usual.
        with store.not_waiting():
            for name in ("first", "second"):
                with store.transaction() as uow:
                    uow.add_challenge(_challenge(name))
        assert _stored(store, "first")
        assert _stored(store, "second")
    finally:
        store.dispose()


def test_not_waiting_gives_up_when_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = SqlStore.open(f"sqlite:///{path}", busy_timeout=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(WriterBusy), store.not_waiting(), store.transaction() as uow:
            uow.add_challenge(_challenge("refused"))
        assert time.monotonic() - started < 0.2
        # The same connection waits again for a writer outside not_waiting: its busy
        # timeout is back.
        started = time.monotonic()
        with pytest.raises(StoreUnavailable), store.transaction() as uow:
            uow.add_challenge(_challenge("timed out"))
        assert time.monotonic() - started >= 0.25
        other.execute("ROLLBACK")
        with store.not_waiting(), store.transaction() as uow:
            uow.add_challenge(_challenge("later"))
        assert _stored(store, "later")
        assert not _stored(store, "refused")
        assert not _stored(store, "timed out")
    finally:
        other.close()
        store.dispose()


@pytest.mark.parametrize(
    ("query", "level"), [("", 1), ("?synchronous=full", 2), ("?synchronous=EXTRA", 3)]
)
def test_the_url_chooses_how_a_commit_is_synced(tmp_path: Path, query: str, level: int) -> None:
    """NORMAL (1) survives a crash of the process; FULL (2) syncs the WAL at every commit and
    also survives a power cut. Every connection gets it, the kept ones included."""
    with SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}{query}") as store:
        with store.transaction() as uow:
            uow.add_challenge(_challenge("synced"))
            driver = uow._conn.connection.driver_connection  # type: ignore[attr-defined]
            assert driver.execute("PRAGMA synchronous").fetchone()[0] == level
        assert (tmp_path / "p.db").exists()  # the option is not part of the file's name


def test_an_unknown_synchronous_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"synchronous='sometimes'.*normal, full, extra"):
        SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}?synchronous=sometimes")
    assert not (tmp_path / "p.db").exists()


def test_transactions_that_must_not_wait_set_the_busy_timeout_once_in_a_row(
    tmp_path: Path,
) -> None:
    """On the server's event loop one not-waiting transaction follows another: the
    connection's busy timeout is set to 0 once, not around each (the two PRAGMAs cost half a
    BEGIN), and set back by the first transaction that waits."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}")
    sent: list[str] = []

    @event.listens_for(store.engine, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    store.dispose()
    try:
        for name in ("a", "b", "c"):
            with store.not_waiting(), store.transaction() as uow:
                uow.add_challenge(_challenge(name))
        with store.transaction() as uow:
            uow.add_challenge(_challenge("d"))
        pragmas = [s for s in sent if s.startswith("PRAGMA busy_timeout")]
        # (The connection's own, when it opened, came before the trace.)
        assert pragmas == ["PRAGMA busy_timeout=0", "PRAGMA busy_timeout=10000"], pragmas
        assert all(_stored(store, name) for name in "abcd")
    finally:
        store.dispose()
