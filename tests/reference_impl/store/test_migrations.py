"""Alembic builds exactly the schema ``tables.metadata`` describes, on both backends."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeEngine

from mynahil.reference_impl.audit import GENESIS
from mynahil.reference_impl.store import SqlStore, make_engine, metadata, migrate, upgrade
from mynahil.reference_impl.store.sql import MIGRATIONS
from mynahil.reference_impl.store.tables import audit_head

ALEMBIC = "alembic_version"


def kind(type_: TypeEngine[object]) -> str:
    """A loose type: what matters to the code, not the backend's spelling of it."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    for generic in (DateTime, Date, LargeBinary, Integer, String):
        if isinstance(type_, generic):
            return generic.__name__
    raise AssertionError(f"unexpected column type {type_!r}")


def described(engine: Engine) -> dict[str, dict[str, tuple[str, bool]]]:
    """Tables → columns → (loose type, nullable), as the database reports them."""
    inspector = inspect(engine)
    return {
        table: {
            column["name"]: (kind(column["type"]), bool(column["nullable"]))
            for column in inspector.get_columns(table)
        }
        for table in inspector.get_table_names()
        if table != ALEMBIC
    }


def intended() -> dict[str, dict[str, tuple[str, bool]]]:
    return {
        table.name: {
            column.name: (kind(column.type), bool(column.nullable)) for column in table.columns
        }
        for table in metadata.sorted_tables
    }


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_upgrade_builds_the_metadata_schema(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert described(engine) == {}
        migrate(engine)
        assert described(engine) == intended()
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [
                column.name for column in table.primary_key
            ]
        with engine.connect() as connection:
            # Alembic's own comparison: no table, column, type, index or key differs.
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()


def test_timestamps_are_timezone_aware_columns(store: SqlStore) -> None:
    if store.engine.dialect.name != "postgresql":
        return  # SQLite has no such column type; tables.UTCDateTime handles it
    columns = inspect(store.engine).get_columns("audit_log")
    at = next(column for column in columns if column["name"] == "at")
    assert isinstance(at["type"], DateTime)
    assert at["type"].timezone


def test_upgrade_is_idempotent(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)
    with SqlStore.open(store_url) as store:
        assert current_revision(store.engine) == head_revision() == "0008"
        with store.engine.connect() as connection:
            heads = connection.execute(select(audit_head)).all()
        assert [tuple(row) for row in heads] == [(1, 0, GENESIS)]


def test_open_without_migrating_leaves_the_database_alone(store_url: str) -> None:
    with SqlStore.open(store_url, migrate=False) as store:
        assert described(store.engine) == {}
        assert current_revision(store.engine) is None


def test_downgrade_removes_everything_and_upgrade_rebuilds(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert described(engine) == {}
        migrate(engine)
        assert described(engine) == intended()
    finally:
        engine.dispose()


def test_the_ledger_refuses_update_and_delete(store: SqlStore) -> None:
    """Append-only is the database's rule too, not only the code's (migration 0002)."""
    from datetime import UTC, datetime

    from sqlalchemy import delete, insert, update
    from sqlalchemy.exc import DatabaseError

    from mynahil.reference_impl.store.tables import ledger

    row = {
        "record_id": 1, "cap_group": "spend", "campaign_id": "round1", "kind": "grant",
        "points": 100, "operator_id": "op", "service_id": "s", "account_id": "a",
        "transaction_id": "t", "at": datetime.now(UTC),
    }  # fmt: skip
    with store.engine.begin() as connection:
        connection.execute(insert(ledger).values(**row))
    for statement in (update(ledger).values(points=5000), delete(ledger)):
        with pytest.raises(DatabaseError, match="append-only"), store.engine.begin() as c:
            c.execute(statement)
    with store.engine.connect() as connection:
        assert connection.execute(select(ledger.c.points)).scalars().all() == [100]


def _at_revision_with_a_record(connection: Connection, revision: str, at: datetime) -> None:
    """Migrate ``connection`` to ``revision`` and add MyKey record 7 (ID AAAABBBB) there."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    connection.execute(text(
        "INSERT INTO mykeys (record_id, mykey_id, status, created_at, password_failures)"
        " VALUES (7, 'AAAABBBB', 'active', :at, 0)"
    ), {"at": at})  # fmt: skip


def test_0005_makes_each_existing_record_its_own_person_and_keeps_totals(store_url: str) -> None:
    """Data from before the person (migration 0005) keeps its applications and totals: each
    existing MyKey record becomes a person whose ID equals the record's, with no reference."""
    from datetime import UTC, date, datetime

    from sqlalchemy import insert, text

    engine = make_engine(store_url)
    now = datetime(2020, 9, 1, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            _at_revision_with_a_record(connection, "0004", now)
            connection.execute(text(
                "INSERT INTO operators (operator_id, name, public_key, feed_seq, created_at) "
                "VALUES ('op', 'Op', :key, 1, :now)"
            ), {"key": b"k" * 32, "now": now})  # fmt: skip
            connection.execute(text(
                "INSERT INTO applications (campaign_id, record_id, service_id, account_id, "
                "operator_id, applied_at, card_applied_on, feed_seq) VALUES ('round1', 7, 's', "
                "'a', 'op', :now, :day, 1)"
            ), {"now": now, "day": date(2020, 6, 1)})  # fmt: skip
            connection.execute(text(
                "INSERT INTO point_totals (record_id, cap_group, points) VALUES (7, 'spend', 900)"
            ))  # fmt: skip
        migrate(engine)
        assert described(engine) == intended()
        from mynahil.reference_impl.store.tables import applications, mykeys, persons, point_totals

        with engine.connect() as connection:
            assert connection.execute(select(persons.c.person_id, persons.c.person_ref)).all() == [
                (7, None)
            ]
            assert connection.execute(select(mykeys.c.person_id)).scalars().all() == [7]
            assert connection.execute(select(applications.c.person_id)).scalars().all() == [7]
            assert connection.execute(select(point_totals)).all() == [(7, "spend", 900)]
        with engine.begin() as connection:  # the next person gets a fresh ID
            connection.execute(insert(persons).values(person_ref="p-new", created_at=now))
            assert (
                connection.execute(
                    select(persons.c.person_id).where(persons.c.person_ref == "p-new")
                ).scalar_one()
                > 7
            )
    finally:
        engine.dispose()


def test_0007_keeps_the_chain_and_bindings_in_one_tree_each_on_sqlite(store_url: str) -> None:
    """0007 rebuilds audit_log and certificate_bindings on SQLite (seq as the rowid, the
    bindings WITHOUT ROWID): what was there is still there and the chain still verifies."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from mynahil.reference_impl.audit import AuditEvent, chain_hash

    engine = make_engine(store_url)
    at = datetime(2020, 9, 1, tzinfo=UTC)
    event = AuditEvent("issue", "ok", 7, {"serial": "12"})
    digest = chain_hash(GENESIS, 1, at, event)
    try:
        with engine.begin() as connection:
            _at_revision_with_a_record(connection, "0006", at)
            connection.execute(text(
                "INSERT INTO certificate_bindings (serial, record_id, bound_at) "
                "VALUES ('12', 7, :at)"
            ), {"at": at})  # fmt: skip
            connection.execute(text(
                "INSERT INTO audit_log (seq, at, action, outcome, record_id, details, prev_hash, "
                "hash) VALUES (1, :at, 'issue', 'ok', 7, '{\"serial\":\"12\"}', :prev, :hash)"
            ), {"at": at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at,
                "prev": GENESIS, "hash": digest})  # fmt: skip
            connection.execute(
                text("UPDATE audit_head SET seq = 1, hash = :hash"), {"hash": digest}
            )
        migrate(engine)
        with SqlStore(engine) as store:
            assert store.verify_audit() == (1, None)
            with store.transaction() as uow:
                assert uow.record_by_serial(12) is not None
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                indexes = connection.execute(text(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name IN ('audit_log', 'certificate_bindings')"
                )).scalars().all()  # fmt: skip
                created = connection.execute(text(
                    "SELECT sql FROM sqlite_master WHERE name = 'certificate_bindings'"
                )).scalar_one()  # fmt: skip
            # Only the bindings' index on record_id: no second tree for either key.
            assert indexes == ["ix_certificate_bindings_record_id"]
            assert "WITHOUT ROWID" in created
    finally:
        engine.dispose()
