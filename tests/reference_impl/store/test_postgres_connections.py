"""The platform's PostgreSQL connections: statements prepared once per connection and planned
for their parameters, no ping before every transaction, and a connection the server dropped
costing one 503 "busy" (never a driver error), then replaced."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from mynahil.reference_impl.mykey.ports import StoreUnavailable
from mynahil.reference_impl.store import SqlStore, make_engine


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(postgres_url) as opened:
        yield opened


def _backend(store: SqlStore) -> int:
    """The backend of the store's one pooled connection (the pool reuses it)."""
    with store.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_statements_are_prepared_and_planned_for_their_parameters(store: SqlStore) -> None:
    with store.transaction() as uow:
        uow.record_by_serial(1)
        uow.mykey_id_used("AAAABBBBCCCC")
    with store.engine.connect() as connection:
        prepared = connection.execute(
            text("SELECT statement FROM pg_prepared_statements")
        ).scalars()
        joined = "\n".join(prepared)
        mode = connection.execute(text("SHOW plan_cache_mode")).scalar_one()
    assert "certificate_bindings" in joined  # record_by_serial's statement, prepared
    assert mode == "force_custom_plan"  # never a generic plan (an IN list once scanned all)


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
