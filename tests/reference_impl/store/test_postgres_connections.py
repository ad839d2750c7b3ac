"""The platform's PostgreSQL connections: statements prepared once per connection (those
over arrays planned for their values every time), no ping before every transaction, and a
connection the server dropped costing one 503 "busy" (never a driver error), then replaced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

import psycopg
import pytest
from sqlalchemy import Connection, event, text

from mynahil.reference_impl.audit import AuditEvent
from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.mykey import Purpose
from mynahil.reference_impl.mykey.ports import StoreUnavailable
from mynahil.reference_impl.points import Operator, PaymentService
from mynahil.reference_impl.store import SqlStore, make_engine, prepared
from tests.reference_impl.mykey.platform import Platform
from tests.reference_impl.store.rows import stored_transaction

NOW = datetime(2020, 9, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(postgres_url) as opened:
        yield opened


def _on_the_store_connection(store: SqlStore, sql: str) -> list[Any]:
    """What ``sql`` answers on the connection the store's transactions run on (it keeps one
    open between transactions, so a single-threaded test always gets the same)."""
    with store.transaction() as uow:
        connection: Connection = uow._conn  # type: ignore[attr-defined]  # white box
        return list(connection.execute(text(sql)).scalars())


def _backend(store: SqlStore) -> int:
    """The backend of the store's connection."""
    return int(_on_the_store_connection(store, "SELECT pg_backend_pid()")[0])


def _prepared(store: SqlStore) -> dict[str, tuple[int, int]]:
    """The statements prepared on the store's connection: (generic plans, custom plans)."""
    rows = _on_the_store_connection(
        store,
        "SELECT json_build_array(statement, generic_plans, custom_plans) "
        "FROM pg_prepared_statements",
    )
    return {statement: (int(generic), int(custom)) for statement, generic, custom in rows}


def test_a_statement_of_single_values_is_prepared_once_and_keeps_a_generic_plan(
    store: SqlStore,
) -> None:
    """An issuance's look-ups are planned a few times, then run on one generic plan: no
    planning per run (force_custom_plan cost an issuance ~20% on PostgreSQL)."""
    for _ in range(8):
        with store.transaction() as uow:
            uow.record_by_serial(1)
    by_serial = [plans for sql, plans in _prepared(store).items() if "certificate_bindings" in sql]
    assert len(by_serial) == 1, _prepared(store)
    generic, custom = by_serial[0]
    assert generic >= 2  # PostgreSQL tries five custom plans, then keeps the generic one
    assert custom <= 5


def test_a_lookup_over_an_array_is_planned_for_its_values_and_never_scans_the_table(
    store: SqlStore,
) -> None:
    """A batch's look-ups (key = ANY(array)) are not prepared: planned for the keys given, they
    use the index however often they run (a generic plan once scanned the whole table)."""
    with store.transaction() as uow:
        connection: Connection = uow._conn  # type: ignore[attr-defined]  # white box
        connection.execute(
            text(
                "INSERT INTO mykeys (mykey_id, status, created_at, password_failures, person_id) "
                "SELECT 'T' || lpad(g::text, 11, '0'), 'active', now(), 0, g "
                "FROM generate_series(1, 20000) AS g"
            )
        )
        connection.execute(text("ANALYZE mykeys"))
    scans = text(  # other tests' schemas (run in parallel) have a mykeys table too
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
        "WHERE relname = 'mykeys' AND schemaname = current_schema()"
    )
    with store.transaction() as uow:
        connection = uow._conn  # type: ignore[attr-defined]  # white box
        before = connection.execute(scans).one()
        for start in range(0, 200, 10):
            found = uow.people_of(list(range(start + 1, start + 11)))
            assert len(found) == 10
        after = connection.execute(scans).one()
    assert after.seq_scan == before.seq_scan, (before, after)
    assert after.idx_scan >= before.idx_scan + 20, (before, after)
    assert not any("ANY" in sql for sql in _prepared(store))


def test_a_dropped_connection_answers_busy_once_then_the_store_works(
    store: SqlStore, postgres_url: str
) -> None:
    with store.transaction() as uow:
        uow.record_by_serial(1)
    killer = make_engine(postgres_url)
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": _backend(store)})
    finally:
        killer.dispose()
    with (
        pytest.raises(StoreUnavailable, match="connection was lost") as lost,
        store.transaction() as uow,
    ):
        uow.record_by_serial(1)
    assert lost.value.kind == "busy"  # 503 with Retry-After over HTTP
    with store.transaction() as uow:  # the pool replaced the connection
        assert uow.record_by_serial(1) is None


class _Recording(psycopg.Cursor[Any]):
    """A cursor that notes each statement it sends."""

    sent: ClassVar[list[str]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _Recording.sent.append(str(query))
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        _Recording.sent.append(str(query))
        return super().executemany(query, params_seq, **kwargs)


@pytest.fixture
def record_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The statements the driver runs on libpq's prepared path (not through a cursor) noted
    with the cursor's, in the order sent."""
    execute = prepared.execute

    def recording(
        driver: Any, statement: prepared.NumberedSql, values: Any, *, then_commit: bool = False
    ) -> Any:
        _Recording.sent.append(statement.sql.decode())
        return execute(driver, statement, values, then_commit=then_commit)

    monkeypatch.setattr(prepared, "execute", recording)


@pytest.mark.usefixtures("record_prepared")
@pytest.mark.parametrize("records", [1, 3])
def test_an_audited_transaction_appends_in_one_statement_or_two(
    store: SqlStore, records: int
) -> None:
    """An operation's one audit record (the usual case) costs one statement: the head's lock,
    the record, hashed by the server, and the head's move. Several records cost two: the
    head's lock, then the records (bound as arrays) and the head's move. Either way the chain
    verifies as the Python writer would have made it, non-ASCII details and all."""
    _Recording.sent.clear()
    with store.transaction() as uow:
        driver = cast(Any, uow)._conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        driver.cursor_factory = _Recording
        for n in range(records):
            details = {"serial": str(n), "note": "東京都 ✓", "nested": {"b": 1, "a": [n]}}
            uow.audit(
                AuditEvent("issue", "ok", n or None, details), NOW + timedelta(microseconds=7)
            )
    driver.cursor_factory = psycopg.Cursor  # the pool keeps the connection
    touching = [sql for sql in _Recording.sent if "audit" in sql]
    assert len(touching) == (1 if records == 1 else 2), touching
    assert "FOR UPDATE" in touching[0]
    assert "INSERT INTO audit_log" in touching[-1]
    assert "UPDATE audit_head" in touching[-1]
    assert store.verify_audit() == (records, None)
    assert [r.details["serial"] for r in store.audit_records()] == [str(n) for n in range(records)]


@pytest.mark.usefixtures("record_prepared")
def test_a_new_ids_issuance_is_four_statements_of_the_store(
    store: SqlStore, jlis_ca: JlisCA, key_pool: KeyPool
) -> None:
    """Round trips are what an issuance costs on PostgreSQL: consume the challenge and look
    the certificate's binding up (one statement), create the person and the record (one),
    check the ID was never retired and bind the certificate (one), append the audit record
    (one); besides BEGIN, COMMIT and J-LIS's question (this harness's J-LIS keeps its registry
    apart)."""
    platform = Platform(store, jlis_ca, key_pool)
    holder = platform.new_card()
    challenge, certificate, signature = platform.prove(holder, Purpose.ISSUE)

    @event.listens_for(store.engine, "connect")
    def _record_statements(dbapi_connection: psycopg.Connection[Any], _entry: object) -> None:
        dbapi_connection.cursor_factory = _Recording

    store.dispose()  # kept connections are opened again, recording
    _Recording.sent.clear()
    result = platform.service.issue(challenge.challenge_id, certificate, signature)
    assert result.created
    sent = [" ".join(sql.split()) for sql in _Recording.sent]
    expected = [
        "WITH consumed AS (UPDATE challenges",
        "WITH new_person AS (INSERT INTO persons",
        "WITH retired AS",
        "WITH head AS",
    ]
    assert [sql[: len(start)] for sql, start in zip(sent, expected, strict=False)] == expected
    assert len(sent) == len(expected), sent
    with store.transaction() as uow:
        record = uow.record_by_mykey_id(result.mykey_id)
        assert record is not None
        assert record.person_id is not None
    assert store.verify_audit()[1] is None


def test_an_operators_lookups_read_only_their_keys_rows_while_statistics_lag(
    store: SqlStore,
) -> None:
    """A batch's look-ups of the operator's transactions, by key and by transaction ID, fetch
    their keys' rows alone from a table that grew without ANALYZE, as on a launch day. With
    ``operator_id = :op AND key = ANY(:keys)`` the planner took the operator's rows for few,
    read every one of them and filtered: each batch cost more as the table grew."""
    with store.transaction() as uow:
        uow.add_operator(Operator("op", "Op", b"k" * 32), [PaymentService("pay", "op", "Pay")])
        uow.add_transactions(
            [stored_transaction(f"key-{n}", f"tx-{n}", NOW) for n in range(20_000)]
        )
    fetched = text(  # rows fetched through an index (bitmap scans too) or read by a scan
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) "
        "FROM pg_stat_xact_user_tables "
        "WHERE relname = 'point_transactions' AND schemaname = current_schema()"
    )
    with store.transaction() as uow:
        connection: Connection = uow._conn  # type: ignore[attr-defined]  # white box
        before = connection.execute(fetched).scalar_one()
        keys = {f"key-{n}" for n in range(0, 20_000, 1000)} | {"key-missing"}
        assert len(uow.transactions_by_key("op", keys)) == 20
        ids = {f"tx-{n}" for n in range(7, 20_000, 1000)}
        assert len(uow.transactions_by_id("op", ids)) == 20
        after = connection.execute(fetched).scalar_one()
    assert after - before <= 40, (before, after)
