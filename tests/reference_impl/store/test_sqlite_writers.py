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
