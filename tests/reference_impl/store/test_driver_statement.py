"""The stores' executor (:class:`mynahil.reference_impl.store.driver.DriverStatement`), on SQLite
and PostgreSQL: rows read on the driver hold the same Python values as rows read through
SQLAlchemy, lists expand, clashes and bad values raise as SQLAlchemy raises them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import ARRAY, bindparam, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.driver import DriverStatement, insert_new
from mynahil.reference_impl.store.tables import challenges, jlis_cards, persons

NOW = datetime(2020, 9, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=9)))

_ADD_CHALLENGE = DriverStatement(
    insert(challenges).values({c.name: bindparam(c.name) for c in challenges.c})
)
_CHALLENGES_IN = DriverStatement(
    select(challenges)
    .where(challenges.c.challenge_id.in_(bindparam("ids", expanding=True)))
    .order_by(challenges.c.challenge_id)
)
_USE = DriverStatement(
    update(challenges)
    .where(challenges.c.challenge_id == bindparam("cid"), challenges.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
)
_NEW_PERSON = insert_new(persons, ["person_ref", "created_at"])
_ADD_CARD = DriverStatement(
    insert(jlis_cards).values({c.name: bindparam(c.name) for c in jlis_cards.c})
)
_CARD = DriverStatement(select(jlis_cards).where(jlis_cards.c.card_id == bindparam("card")))


def _challenge(challenge_id: str) -> dict[str, object]:
    return {
        "challenge_id": challenge_id,
        "nonce": b"\x00nonce\xff",
        "purpose": "issue",
        "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=2),
        "used_at": None,
    }


def test_a_row_reads_the_same_on_the_driver_and_through_sqlalchemy(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        _ADD_CHALLENGE.many(conn, [_challenge("a"), _challenge("b")])
        assert _USE.run(conn, {"cid": "a", "now": NOW}) == 1
        assert _USE.run(conn, {"cid": "a", "now": NOW}) == 0
        on_driver = _CHALLENGES_IN.rows(conn, {"ids": ["a", "b"]})
        through_sqlalchemy = [
            dict(row._mapping)
            for row in conn.execute(select(challenges).order_by(challenges.c.challenge_id))
        ]
    assert on_driver == through_sqlalchemy
    assert on_driver[0]["used_at"] == NOW
    assert on_driver[0]["used_at"].tzinfo == UTC
    assert type(on_driver[0]["nonce"]) is bytes


def test_many_rows_keep_each_rows_times_where_they_share_one(store: SqlStore) -> None:
    """An executemany's rows: each its own creation time, all one expiry (as a batch of
    reports shares its decision time), in either order of the two columns' values."""
    shared = NOW + timedelta(minutes=2)
    rows = [
        {**_challenge(f"c{n}"), "created_at": NOW + timedelta(microseconds=n), "expires_at": shared}
        for n in range(5)
    ] + [{**_challenge("same"), "created_at": shared, "expires_at": shared}]
    with store.engine.begin() as conn:
        _ADD_CHALLENGE.many(conn, rows)
        read = _CHALLENGES_IN.rows(conn, {"ids": [r["challenge_id"] for r in rows]})
    by_id = {r["challenge_id"]: r for r in read}
    for row in rows:
        stored = by_id[row["challenge_id"]]
        assert (stored["created_at"], stored["expires_at"]) == (row["created_at"], shared)


def test_a_date_reads_the_same_on_the_driver_and_through_sqlalchemy(store: SqlStore) -> None:
    card = {"card_id": "c1", "person_ref": "p", "applied_on": date(2020, 8, 31),
            "issued_on": date(2020, 9, 1), "replaces": None}  # fmt: skip
    with store.engine.begin() as conn:
        _ADD_CARD.run(conn, card)
        on_driver = _CARD.one(conn, {"card": "c1"})
        through_sqlalchemy = conn.execute(select(jlis_cards)).one()._mapping
    assert on_driver == dict(through_sqlalchemy) == card


def test_rows_keep_their_column_names_from_the_first_run_on(store: SqlStore) -> None:
    """The names are read off the cursor once per statement: a first run that finds no row,
    a later one that finds some, and a write that returns no rows at all each answer right."""
    labelled = DriverStatement(
        select(challenges.c.challenge_id.label("cid"), challenges.c.purpose).where(
            challenges.c.challenge_id == bindparam("cid")
        )
    )
    use = DriverStatement(
        update(challenges).where(challenges.c.challenge_id == bindparam("cid"))
        .values(used_at=bindparam("now"))
    )  # fmt: skip
    with store.engine.begin() as conn:
        assert labelled.rows(conn, {"cid": "a"}) == []
        assert use.rows(conn, {"cid": "a", "now": NOW}) == []
        _ADD_CHALLENGE.run(conn, _challenge("a"))
        assert labelled.rows(conn, {"cid": "a"}) == [{"cid": "a", "purpose": "issue"}]
        assert use.rows(conn, {"cid": "a", "now": NOW}) == []
        assert labelled.one(conn, {"cid": "a"}) == {"cid": "a", "purpose": "issue"}


def test_an_in_list_expands_to_any_length(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        _ADD_CHALLENGE.many(conn, [_challenge(str(i)) for i in range(5)])
        for length in (0, 1, 3, 1, 5, 0):
            wanted = [str(i) for i in range(length)]
            found = _CHALLENGES_IN.rows(conn, {"ids": [*wanted, "absent"]})
            assert [row["challenge_id"] for row in found] == wanted


def test_one_and_scalar(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        assert _NEW_PERSON.scalar(conn, {"person_ref": "p1", "created_at": NOW}) is not None
        assert _NEW_PERSON.one(conn, {"person_ref": "p1", "created_at": NOW}) is None
        assert _CARD.one(conn, {"card": "absent"}) is None
        assert _CARD.scalar(conn, {"card": "absent"}) is None
        _ADD_CHALLENGE.many(conn, [_challenge("a"), _challenge("b")])
        with pytest.raises(LookupError):
            _CHALLENGES_IN.one(conn, {"ids": ["a", "b"]})


def test_a_clash_raises_integrity_error_and_a_naive_time_statement_error(
    store: SqlStore,
) -> None:
    with store.engine.connect() as conn:
        with conn.begin():
            _ADD_CHALLENGE.run(conn, _challenge("a"))
        with pytest.raises(IntegrityError), conn.begin():
            _ADD_CHALLENGE.run(conn, _challenge("a"))
        naive = {**_challenge("n"), "created_at": datetime(2020, 9, 1)}
        with pytest.raises(StatementError, match="naive datetime"), conn.begin():
            _ADD_CHALLENGE.run(conn, naive)


_UNNEST_CHALLENGES = DriverStatement(
    lambda dialect: select(
        func.unnest(
            *(cast(bindparam(c.name, type_=ARRAY(c.type)), ARRAY(c.type)) for c in challenges.c)
        )
        .table_valued(*(c.name for c in challenges.c))
        .render_derived()
    )
)


def test_arrays_go_in_binary_on_postgresql_and_keep_every_value(store: SqlStore) -> None:
    """A batch's rows travel as one array per column (points_sql): on psycopg in its binary
    format (its text format quoted each element through a regular expression, a third of a
    batch's time), with NULLs, bytes and aware times kept."""
    if store.engine.dialect.name != "postgresql":
        return  # SQLite takes a batch as an executemany, not as arrays
    rows = [_challenge("a"), {**_challenge("b"), "used_at": NOW, "nonce": b""}]
    columns = {c.name: [row[c.name] for row in rows] for c in challenges.c}
    with store.engine.begin() as connection:
        assert "%(nonce)b" in _UNNEST_CHALLENGES._for(connection.dialect).sql
        read = _UNNEST_CHALLENGES.rows(connection, columns)
    assert read == [{**row, "created_at": NOW, "expires_at": row["expires_at"]} for row in rows]
