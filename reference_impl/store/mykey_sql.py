"""The MyKey platform's half of a store transaction: challenges, MyKey records, persons,
certificate bindings, retired IDs and sessions
(:class:`mynahil.reference_impl.mykey.ports.UnitOfWork`).

Every statement is built once, at import, and run through :class:`.DriverStatement` (building
a Core statement and its cache key cost ~180 µs, five times what SQLite then takes to run
it). Uniqueness is left to unique indexes: an ``INSERT … ON CONFLICT DO NOTHING`` that
returns no row, or a SAVEPOINT around a claim, turns a clash into :class:`Conflict` and
leaves the transaction usable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from mynahil.reference_impl.mykey.model import (
    Challenge,
    LoginMethod,
    MyKeyRecord,
    MyKeyStatus,
    Purpose,
    Session,
)
from mynahil.reference_impl.mykey.ports import Conflict, MyKeyIdUnavailable, SerialBound

from .driver import (
    DriverStatement,
    as_utc,
    column_params,
    dialect_insert,
    insert_new,
    insert_new_statement,
)
from .engine import is_unique_violation
from .tables import certificate_bindings, challenges, mykeys, persons, retired_ids, sessions

__all__ = ["MyKeyStatements", "challenge_from_row", "record_from_row", "session_from_row"]

_ADD_CHALLENGE = DriverStatement(
    insert(challenges).values({c.name: bindparam(c.name) for c in challenges.c})
)
_CONSUMING = (
    update(challenges)
    .where(challenges.c.challenge_id == bindparam("cid"), challenges.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
    .returning(*challenges.c)
)
_CONSUME = DriverStatement(_CONSUMING)
_CHALLENGE = DriverStatement(
    select(challenges).where(challenges.c.challenge_id == bindparam("cid"))
)

_RECORD_COLUMNS = ("mykey_id", "status", "created_at", "password_failures", "person_id")


def _new_record(dialect: str) -> Any:
    """A new ``mykeys`` row, its ``record_id`` returned; no row when the ID is taken. On SQLite
    also none when the ID was retired, in the same statement (BEGIN IMMEDIATE serialises
    writers, so nothing can retire it meanwhile); PostgreSQL asks afterwards (_refuse_retired)."""
    if dialect != "sqlite":
        return insert_new_statement(dialect, mykeys, _RECORD_COLUMNS)
    never_retired = ~exists().where(retired_ids.c.mykey_id == bindparam("mykey_id"))
    given: list[ColumnElement[Any]] = [bindparam(name) for name in _RECORD_COLUMNS]
    values = select(*given).where(never_retired)
    return (
        dialect_insert(dialect, mykeys)
        .from_select(_RECORD_COLUMNS, values)
        .on_conflict_do_nothing()
        .returning(mykeys.c.record_id)
    )


_NEW_RECORD = DriverStatement(_new_record)
_BINDING_COLUMNS = ("serial", "record_id", "bound_at", "not_before", "not_after")


def _person_and_record(dialect: str) -> Any:
    """PostgreSQL: the person (created on first sight) and a new ``mykeys`` row for them, in
    one statement; its record_id and person_id, or no row when the ID is taken, or when
    another transaction created the person after this statement began (it does not see that
    row), which the caller tells apart the slow way."""
    assert dialect == "postgresql", "SQLite creates the person, then the record"
    new_person = (
        postgresql.insert(persons)
        .values(person_ref=bindparam("person_ref"), created_at=bindparam("created_at"))
        .on_conflict_do_nothing()
        .returning(persons.c.person_id)
        .cte("new_person")
    )
    known = select(persons.c.person_id).where(persons.c.person_ref == bindparam("person_ref"))
    person = select(new_person.c.person_id).union_all(known).cte("person")
    given = column_params(mykeys, _RECORD_COLUMNS[:-1]).values()
    return (
        postgresql.insert(mykeys)
        .from_select(_RECORD_COLUMNS, select(*given, person.c.person_id).limit(1))
        .on_conflict_do_nothing()
        .returning(mykeys.c.record_id, mykeys.c.person_id)
    )


def _bind_unless_retired(dialect: str) -> Any:
    """PostgreSQL: whether ``mykey_id`` was ever retired, and, if not, the binding of the new
    record, in one statement (a row: retired, bound). It runs after the record's INSERT, so
    it sees a retirement that INSERT waited for (read committed: a snapshot per statement)."""
    assert dialect == "postgresql", "SQLite refuses a retired ID in the record's INSERT"
    retired = select(
        exists().where(retired_ids.c.mykey_id == bindparam("mykey_id")).label("retired")
    ).cte("retired")
    bound = (
        postgresql.insert(certificate_bindings)
        .from_select(
            _BINDING_COLUMNS,
            select(*column_params(certificate_bindings, _BINDING_COLUMNS).values()).where(
                ~retired.c.retired
            ),
        )
        .on_conflict_do_nothing()
        .returning(certificate_bindings.c.serial)
        .cte("bound")
    )
    count = select(func.count()).select_from(bound).scalar_subquery()
    return select(retired.c.retired, count.label("bound"))


_PERSON_AND_RECORD = DriverStatement(_person_and_record)
_BIND_UNLESS_RETIRED = DriverStatement(_bind_unless_retired)
_NEW_PERSON = insert_new(persons, ["person_ref", "created_at"])
_NEW_BINDING = insert_new(certificate_bindings, _BINDING_COLUMNS)
_BOUND_TO_SERIAL = (
    select(mykeys)
    .join(certificate_bindings, certificate_bindings.c.record_id == mykeys.c.record_id)
    .where(
        certificate_bindings.c.serial == bindparam("serial"),
        mykeys.c.status != MyKeyStatus.REVOKED.value,
    )
)
_BY_SERIAL = DriverStatement(_BOUND_TO_SERIAL)


def _consume_and_look_up(dialect: str) -> Any:
    """PostgreSQL: :data:`_CONSUME` and :data:`_BY_SERIAL` in one statement, a round trip
    fewer for every card proof. One row always: the claimed challenge's columns (``c_…``, all
    NULL when it was not claimed) beside the bound record's (``r_…``, NULL when none)."""
    assert dialect == "postgresql", "SQLite runs the two statements (no round trips)"
    consumed = _CONSUMING.cte("consumed")
    bound = _BOUND_TO_SERIAL.subquery("bound")
    one = select(literal(1).label("one")).subquery("one")
    return select(
        *(column.label(f"c_{column.name}") for column in consumed.c),
        *(column.label(f"r_{column.name}") for column in bound.c),
    ).select_from(one.outerjoin(consumed, true()).outerjoin(bound, true()))


_CONSUME_AND_LOOK_UP = DriverStatement(_consume_and_look_up)


def _unprefixed(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The columns of ``row`` labelled ``prefix…``, by their own names."""
    return {name[len(prefix) :]: value for name, value in row.items() if name.startswith(prefix)}


_BY_MYKEY_ID = select(mykeys).where(mykeys.c.mykey_id == bindparam("mid"))
_BY_RECORD_ID = select(mykeys).where(mykeys.c.record_id == bindparam("rid"))
# The locking reads: FOR UPDATE on PostgreSQL; SQLite renders none (BEGIN IMMEDIATE locked).
_RECORD_BY_MYKEY_ID = (
    DriverStatement(_BY_MYKEY_ID),
    DriverStatement(_BY_MYKEY_ID.with_for_update()),
)
_RECORD = (DriverStatement(_BY_RECORD_ID), DriverStatement(_BY_RECORD_ID.with_for_update()))
_PERSON_RECORD = DriverStatement(
    select(mykeys)
    .where(mykeys.c.person_id == bindparam("pid"), mykeys.c.status != MyKeyStatus.REVOKED.value)
    .order_by(mykeys.c.record_id.desc())
    .limit(1)
)
_PERSON_ID = DriverStatement(
    select(persons.c.person_id).where(persons.c.person_ref == bindparam("ref"))
)
_RETIRED = DriverStatement(select(exists().where(retired_ids.c.mykey_id == bindparam("mid"))))
_ID_USED = DriverStatement(
    select(
        or_(
            exists().where(mykeys.c.mykey_id == bindparam("mid")),
            exists().where(retired_ids.c.mykey_id == bindparam("mid")),
        )
    )
)
_DISCARD_RECORD = DriverStatement(delete(mykeys).where(mykeys.c.record_id == bindparam("rid")))
_UNBIND = DriverStatement(
    delete(certificate_bindings)
    .where(certificate_bindings.c.record_id == bindparam("rid"))
    .returning(certificate_bindings.c.serial)
)
_CURRENT_ID = DriverStatement(
    select(mykeys.c.mykey_id).where(mykeys.c.record_id == bindparam("rid")).with_for_update()
)
_RETIRE = DriverStatement(
    insert(retired_ids).values(
        mykey_id=bindparam("mid"), record_id=bindparam("rid"), retired_at=bindparam("now")
    )
)
_SET_ID = DriverStatement(
    update(mykeys).where(mykeys.c.record_id == bindparam("rid")).values(mykey_id=bindparam("mid"))
)
_UPDATE_RECORD = DriverStatement(
    update(mykeys)
    .where(mykeys.c.record_id == bindparam("rid"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "status", "password_hash", "password_failures", "locked_until", "revoked_at"
            )
        }
    )
)  # fmt: skip
_ADD_SESSION = DriverStatement(
    insert(sessions).values({c.name: bindparam(c.name) for c in sessions.c})
)
_SESSION = DriverStatement(select(sessions).where(sessions.c.token_hash == bindparam("token")))
_END_SESSIONS = DriverStatement(delete(sessions).where(sessions.c.record_id == bindparam("rid")))


class MyKeyStatements:
    """Mixed into the store's unit of work: ``_conn`` is its connection."""

    _conn: Connection

    @contextmanager
    def _claim(self, what: str) -> Iterator[None]:
        """Run a write that takes a unique value; a clash becomes :class:`Conflict`.

        The SAVEPOINT undoes the write alone, so the caller's transaction stays usable
        (PostgreSQL would otherwise refuse every later statement in it).
        """
        try:
            with self._conn.begin_nested():
                yield
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            raise Conflict(what) from None

    # challenges

    def add_challenge(self, challenge: Challenge) -> None:
        _ADD_CHALLENGE.run(
            self._conn,
            {
                "challenge_id": challenge.challenge_id,
                "nonce": challenge.nonce,
                "purpose": challenge.purpose.value,
                "created_at": challenge.created_at,
                "expires_at": challenge.expires_at,
                "used_at": challenge.used_at,
            },
        )

    def consume_challenge(self, challenge_id: str, now: datetime) -> Challenge | None:
        """Mark used and return it as it was; exactly one of racing callers sees used_at None.

        The conditional UPDATE is the arbiter: a second writer blocks on the row (or, on
        SQLite, on the write lock) and then finds ``used_at`` set.
        """
        return self._taken(
            challenge_id, _CONSUME.one(self._conn, {"cid": challenge_id, "now": now})
        )

    def _taken(self, challenge_id: str, claimed: Mapping[str, Any] | None) -> Challenge | None:
        """The challenge as it was before this transaction claimed it (``claimed``: the row
        the claiming UPDATE returned), or, not claimed, as it is (used already, or None)."""
        if claimed is not None:
            return challenge_from_row({**claimed, "used_at": None})
        found = _CHALLENGE.one(self._conn, {"cid": challenge_id})
        return challenge_from_row(found) if found is not None else None

    def consume_challenge_and_look_up(
        self, challenge_id: str, now: datetime, serial: int
    ) -> tuple[Challenge | None, MyKeyRecord | None]:
        """:meth:`consume_challenge`, and :meth:`record_by_serial` for ``serial`` read in the
        same statement on PostgreSQL (the record as it stood when the statement began; a
        binding committed meanwhile surfaces as :class:`SerialBound` when this one binds)."""
        if self._conn.dialect.name != "postgresql":
            challenge = self.consume_challenge(challenge_id, now)
            return challenge, self.record_by_serial(serial)
        row = _CONSUME_AND_LOOK_UP.one(self._conn, {"cid": challenge_id, "now": now,
                                                    "serial": str(serial)})  # fmt: skip
        assert row is not None, "one row always (the outer joins)"
        claimed, bound = _unprefixed(row, "c_"), _unprefixed(row, "r_")
        record = record_from_row(bound) if bound["record_id"] is not None else None
        claimed_row = claimed if claimed["challenge_id"] is not None else None
        return self._taken(challenge_id, claimed_row), record

    # MyKey records

    def record_by_serial(self, serial: int) -> MyKeyRecord | None:
        row = _BY_SERIAL.one(self._conn, {"serial": str(serial)})
        return record_from_row(row) if row is not None else None

    def record_by_mykey_id(self, mykey_id: str, *, lock: bool = False) -> MyKeyRecord | None:
        row = _RECORD_BY_MYKEY_ID[lock].one(self._conn, {"mid": mykey_id})
        return record_from_row(row) if row is not None else None

    def record(self, record_id: int, *, lock: bool = False) -> MyKeyRecord | None:
        row = _RECORD[lock].one(self._conn, {"rid": record_id})
        return record_from_row(row) if row is not None else None

    def mykey_id_used(self, mykey_id: str) -> bool:
        return bool(_ID_USED.scalar(self._conn, {"mid": mykey_id}))

    def _refuse_retired(self, mykey_id: str) -> None:
        """Conflict if the ID was ever retired.

        Checked *after* writing the ID into ``mykeys``: if another transaction was retiring
        it, the unique index made this one wait for that commit, and under READ COMMITTED
        this later statement then sees the retirement.
        """
        if _RETIRED.scalar(self._conn, {"mid": mykey_id}):
            raise MyKeyIdUnavailable(f"MyKey ID {mykey_id} was used before and is never reissued")

    def create_record(
        self, mykey_id: str, now: datetime, person_id: int | None = None
    ) -> MyKeyRecord:
        record_id = _NEW_RECORD.scalar(
            self._conn,
            {
                "mykey_id": mykey_id,
                "status": MyKeyStatus.ACTIVE.value,
                "created_at": now,
                "password_failures": 0,
                "person_id": person_id,
            },
        )
        if record_id is None:
            raise MyKeyIdUnavailable(f"MyKey ID {mykey_id} is taken or was retired")
        if self._conn.dialect.name != "sqlite":
            try:
                self._refuse_retired(mykey_id)
            except MyKeyIdUnavailable:
                self.discard_record(int(record_id))
                raise
        return MyKeyRecord(
            int(record_id), mykey_id, MyKeyStatus.ACTIVE, as_utc(now), person_id=person_id
        )

    def create_bound_record(
        self,
        mykey_id: str,
        now: datetime,
        person_ref: str,
        serial: int,
        valid: tuple[datetime, datetime] | None = None,
    ) -> MyKeyRecord:
        if self._conn.dialect.name == "sqlite":  # SQLite's statements cost no round trips
            record = self.create_record(mykey_id, now, self.person(person_ref, now))
            try:
                self.bind_serial(record.record_id, serial, now, valid=valid)
            except SerialBound:
                self.discard_record(record.record_id)
                raise
            return record
        values = {
            "person_ref": person_ref,
            "mykey_id": mykey_id,
            "status": MyKeyStatus.ACTIVE.value,
            "created_at": now,
            "password_failures": 0,
        }
        row = _PERSON_AND_RECORD.one(self._conn, values)
        if row is None:  # the ID is taken, or the person is new to this statement only
            record = self.create_record(mykey_id, now, self.person(person_ref, now))
        else:
            record_id, person_id = int(row["record_id"]), int(row["person_id"])
            record = MyKeyRecord(
                record_id, mykey_id, MyKeyStatus.ACTIVE, as_utc(now), person_id=person_id
            )
        binding = {"mykey_id": mykey_id, **self._binding(record.record_id, serial, now, valid)}
        outcome = _BIND_UNLESS_RETIRED.one(self._conn, binding)
        assert outcome is not None
        if outcome["retired"] or not outcome["bound"]:
            self.discard_record(record.record_id)
            if outcome["retired"]:
                raise MyKeyIdUnavailable(f"MyKey ID {mykey_id} was used before")
            raise SerialBound(f"certificate serial {serial} is bound already")
        return record

    def discard_record(self, record_id: int) -> None:
        _DISCARD_RECORD.run(self._conn, {"rid": record_id})

    def person(self, person_ref: str, now: datetime) -> int:
        # Every issuance asks: one round trip when the person is new, two when known. A racing
        # insert of the same reference waits on the unique index, then reads the winner's row.
        created = _NEW_PERSON.scalar(self._conn, {"person_ref": person_ref, "created_at": now})
        if created is None:
            created = _PERSON_ID.scalar(self._conn, {"ref": person_ref})
        return int(created)

    def person_record(self, person_id: int) -> MyKeyRecord | None:
        row = _PERSON_RECORD.one(self._conn, {"pid": person_id})
        return record_from_row(row) if row is not None else None

    def bind_serial(
        self,
        record_id: int,
        serial: int,
        now: datetime,
        *,
        valid: tuple[datetime, datetime] | None = None,
    ) -> None:
        if _NEW_BINDING.one(self._conn, self._binding(record_id, serial, now, valid)) is None:
            raise SerialBound(f"certificate serial {serial} is bound already")

    @staticmethod
    def _binding(
        record_id: int, serial: int, now: datetime, valid: tuple[datetime, datetime] | None
    ) -> dict[str, Any]:
        return {
            "serial": str(serial),
            "record_id": record_id,
            "bound_at": now,
            "not_before": valid[0] if valid else None,
            "not_after": valid[1] if valid else None,
        }

    def unbind_serials(self, record_id: int) -> list[int]:
        rows = _UNBIND.rows(self._conn, {"rid": record_id})
        return sorted(int(row["serial"]) for row in rows)

    def change_mykey_id(self, record_id: int, new_id: str, now: datetime) -> None:
        """Retire the current ID and make ``new_id`` current.

        Raises :class:`Conflict` if ``new_id`` is current anywhere or was ever retired
        (including the record's own current ID), :class:`LookupError` for an unknown record.
        """
        with self._claim(f"MyKey ID {new_id} is taken"):
            old = _CURRENT_ID.scalar(self._conn, {"rid": record_id})
            if old is None:
                raise LookupError(f"no MyKey record {record_id}")
            _RETIRE.run(self._conn, {"mid": old, "rid": record_id, "now": now})
            _SET_ID.run(self._conn, {"rid": record_id, "mid": new_id})
            self._refuse_retired(new_id)

    def update_record(self, record: MyKeyRecord) -> None:
        """Persist status, password and lock fields (never the ID: see change_mykey_id)."""
        changed = _UPDATE_RECORD.run(
            self._conn,
            {
                "rid": record.record_id,
                "status": record.status.value,
                "password_hash": record.password_hash,
                "password_failures": record.password_failures,
                "locked_until": record.locked_until,
                "revoked_at": record.revoked_at,
            },
        )
        if changed != 1:
            raise LookupError(f"no MyKey record {record.record_id}")

    # sessions

    def add_session(self, session: Session) -> None:
        _ADD_SESSION.run(
            self._conn,
            {
                "token_hash": session.token_hash,
                "record_id": session.record_id,
                "method": session.method.value,
                "created_at": session.created_at,
                "expires_at": session.expires_at,
            },
        )

    def session(self, token_hash: str) -> Session | None:
        row = _SESSION.one(self._conn, {"token": token_hash})
        return session_from_row(row) if row is not None else None

    def end_sessions(self, record_id: int) -> None:
        _END_SESSIONS.run(self._conn, {"rid": record_id})


# --- rows ---------------------------------------------------------------------------------------
# Each takes a Mapping: a DriverStatement's row or SQLAlchemy's ``row._mapping`` (same values).


def challenge_from_row(row: Mapping[str, Any]) -> Challenge:
    return Challenge(
        challenge_id=row["challenge_id"],
        nonce=bytes(row["nonce"]),
        purpose=Purpose(row["purpose"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
    )


def record_from_row(row: Mapping[str, Any]) -> MyKeyRecord:
    return MyKeyRecord(
        record_id=int(row["record_id"]),
        mykey_id=row["mykey_id"],
        status=MyKeyStatus(row["status"]),
        created_at=row["created_at"],
        password_hash=row["password_hash"],
        password_failures=int(row["password_failures"]),
        locked_until=row["locked_until"],
        revoked_at=row["revoked_at"],
        person_id=row["person_id"],
    )


def session_from_row(row: Mapping[str, Any]) -> Session:
    return Session(
        token_hash=row["token_hash"],
        record_id=row["record_id"],
        method=LoginMethod(row["method"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
