"""SQLite takes one writer at a time: this process's writers queue in the store, not in
SQLite's busy handler (which sleeps 1, 2, 5, 10 ms... between its tries)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

from mynahil.reference_impl.mykey.model import Challenge, Purpose
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
