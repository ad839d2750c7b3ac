"""The point system's batch statements: a set of keys is one array parameter, so a look-up's
SQL is the same for any number of keys (compiled once), and any key text round-trips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mynahil.reference_impl.points import Operator, PaymentService, StoredTransaction
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.store.rows import sqlite_statements, stored_transaction

AT = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
# Text a JSON array or an SQL array literal must quote: quotes, backslashes, commas, braces,
# non-ASCII, and something that looks like NULL.
AWKWARD = ['he said "hi"', "back\\slash", "a,b", "{x}", "ポイント", "NULL", " spaced "]


def _row(key: str, transaction_id: str) -> StoredTransaction:
    return stored_transaction(key, transaction_id, AT)


@pytest.fixture
def books(store: SqlStore) -> SqlStore:
    with store.transaction() as uow:
        uow.add_operator(Operator("op", "Op", b"k" * 32), [PaymentService("pay", "op", "Pay")])
        uow.add_transactions(
            [_row(f"key-{n}", f"tx-{n}") for n in range(50)]
            + [_row(f"key-{text}", f"tx-{text}") for text in AWKWARD]
        )
    return store


def test_any_key_text_is_found_by_its_set(books: SqlStore) -> None:
    with books.transaction() as uow:
        by_key = uow.transactions_by_key("op", {f"key-{t}" for t in AWKWARD} | {"missing"})
        by_id = uow.transactions_by_id("op", {f"tx-{t}" for t in AWKWARD} | {"tx-3"})
    assert set(by_key) == {f"key-{t}" for t in AWKWARD}
    assert set(by_id) == {f"tx-{t}" for t in AWKWARD} | {"tx-3"}
    assert by_id["tx-3"] == _row("key-3", "tx-3")


# On SQLite alone: its trace callback shows the SQL the driver runs.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_look_up_runs_the_same_sql_for_any_number_of_keys(books: SqlStore) -> None:
    """Issue 16/17: an ``IN (…)`` list rendered per number of keys cost ~22% of a report;
    one array parameter keeps the statement's text, and SQLite's prepared statement, the same."""
    with sqlite_statements(books.engine) as seen, books.transaction() as uow:
        for count in (1, 7, 50):
            found = uow.transactions_by_key("op", {f"key-{n}" for n in range(count)})
            assert len(found) == count
    seen = [sql for sql in seen if "point_transactions" in sql]
    assert len(seen) == 3
    assert len({_unquoted(sql) for sql in seen}) == 1, seen


def _unquoted(sql: str) -> str:
    """The statement's text without its bound values (the trace shows them inline, quoted)."""
    out, quoted = [], False
    for char in sql:
        if char == "'":
            quoted = not quoted
            continue
        if not quoted:
            out.append(char)
    return "".join(out)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sqlite_finds_a_batchs_applications_through_the_account_index(books: SqlStore) -> None:
    """Not by reading the whole applications table (migration 0008's index)."""
    with sqlite_statements(books.engine) as seen, books.transaction() as uow:
        uow.applications_for_accounts({("pay", "acct"), ("pay", "other")})
    (looked_up,) = [sql for sql in seen if "FROM applications" in sql]
    with books.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        plan = " | ".join(row[3] for row in driver.execute(f"EXPLAIN QUERY PLAN {looked_up}"))
    assert "ix_applications_service_id" in plan, plan
    assert "SCAN applications" not in plan, plan
