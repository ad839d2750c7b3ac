"""The emulated J-LIS registry in the platform's database, so every worker and instance of the
platform sees one record of cards, certificates, revocations and linkage (issue 17).

:class:`SqlRegistry` keeps J-LIS's rules
(:class:`~mynahil.reference_impl.jlis.registry.RegistryRules`) over the tables
``jlis_certificates``, ``jlis_cards`` and ``jlis_crl_number``. Beside it, a ``registry.json``
written by J-LIS's offline desk (``mynahil card new``, the load test's card maker) stays readable: a
certificate or card the database does not know is looked up there (read-only: the platform never
writes the file). Revoking a certificate known only from the file copies it into the database,
revoked; from then on the database's row is the answer.

What never changes once recorded (a certificate's kind, card, expiry and predecessor; a card
record; a successor, once there is one) is remembered by each process after it was read from
committed data, so a holder's second question costs no round trip; whether a certificate is
revoked is asked afresh every time, so a revocation made through one instance holds at once in
every other. One question about a certificate reads its card too (one join).

Transactions: :meth:`SqlRegistry.transaction` is one database transaction on one connection,
kept per thread so nested blocks and the questions asked inside them use it. A question
outside a transaction is a short read of its own (deferred on SQLite, so it never waits for a
writer, not even one in the same thread), unless the platform's store lent this thread its
transaction's connection (:meth:`SqlRegistry.reading_on`): the platform asks J-LIS in the
middle of its unit of work, and asking on that connection costs neither a second checkout
nor, on SQLite, a second connection re-reading the pages the store's last commit changed.
Two writers racing on PostgreSQL meet at the unique keys (one successor per certificate and
per card): the loser's insert does nothing and it answers as the rules would have, had it come
second.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Engine, bindparam, select, update

from mynahil.reference_impl.jlis.registry import (
    CardRecord,
    CertificateEntry,
    CertificateRegistry,
    Kind,
    RegistryRules,
)
from mynahil.reference_impl.mykey.ports import HolderFacts

from .driver import DriverStatement, dialect_insert, forget_ahead
from .engine import SQLITE_BEGIN, unavailable_as_such
from .tables import jlis_cards, jlis_certificates, jlis_crl_number

__all__ = ["SqlRegistry"]

_C = jlis_certificates.c
# A certificate with its card (if J-LIS recorded one): what the issuance path asks.
_CERTIFICATE_AND_CARD: Final = (
    select(
        jlis_certificates,
        jlis_cards.c.card_id.label("card_card_id"),
        jlis_cards.c.person_ref,
        jlis_cards.c.applied_on,
        jlis_cards.c.issued_on,
        jlis_cards.c.replaces.label("card_replaces"),
    )
    .outerjoin(jlis_cards, jlis_cards.c.card_id == jlis_certificates.c.card_id)
    .where(jlis_certificates.c.serial == bindparam("serial"))
)
# The issuance path's question (see :meth:`SqlRegistry._ask`).
_FIND: Final = DriverStatement(_CERTIFICATE_AND_CARD)
_CARD: Final = DriverStatement(select(jlis_cards).where(jlis_cards.c.card_id == bindparam("card")))
_SUCCESSOR: Final = DriverStatement(select(_C.serial).where(_C.replaces == bindparam("serial")))
_REISSUED_AS: Final = DriverStatement(
    select(jlis_cards.c.card_id).where(jlis_cards.c.replaces == bindparam("card"))
)
_REVOKED: Final = DriverStatement(
    select(jlis_certificates).where(_C.kind == bindparam("kind"), _C.revoked_at.is_not(None))
)
_HELD: Final = DriverStatement(
    select(_C.serial).where(_C.serial.in_(bindparam("serials", expanding=True)))
)
_ALL: Final = DriverStatement(select(jlis_certificates))
_CRL_NUMBER: Final = DriverStatement(
    select(jlis_crl_number.c.crl_number).where(jlis_crl_number.c.id == 1).with_for_update()
)
_SET_CRL_NUMBER: Final = DriverStatement(
    update(jlis_crl_number).where(jlis_crl_number.c.id == 1).values(crl_number=bindparam("n"))
)
# Inserts that leave a clash to the caller ("no row returned"), per dialect.
_ADD_CERTIFICATE: Final = DriverStatement(
    lambda dialect: (
        dialect_insert(dialect, jlis_certificates)
        .values({c.name: bindparam(c.name) for c in jlis_certificates.c})
        .on_conflict_do_nothing()
        .returning(_C.serial)
    )
)
_ADD_CARD: Final = DriverStatement(
    lambda dialect: (
        dialect_insert(dialect, jlis_cards)
        .values({c.name: bindparam(c.name) for c in jlis_cards.c})
        .on_conflict_do_nothing()
        .returning(jlis_cards.c.card_id)
    )
)
_REVOKE: Final = DriverStatement(
    update(jlis_certificates)
    .where(_C.serial == bindparam("serial"), _C.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"), reason=bindparam("reason"))
)
REMEMBERED: Final = 100_000
"""How many certificates (and as many cards) a process remembers; the oldest are forgotten."""


class SqlRegistry(RegistryRules):
    """J-LIS's registry in the platform's database; ``legacy``, when given, is the CA folder's
    ``registry.json``, read for what the database does not hold."""

    def __init__(self, engine: Engine, legacy: CertificateRegistry | None = None) -> None:
        self._engine = engine
        self.legacy = legacy
        self._sends_ahead = engine.dialect.name == "postgresql"  # see prefetch_status
        # .connection while this thread is in a transaction of the registry's own; .lent while
        # it runs a transaction of the platform's store on the same database (reading_on)
        self._local = threading.local()
        # Facts that never change, read from committed data (see the module's docstring).
        self._known: OrderedDict[int, CertificateEntry] = OrderedDict()  # unrevoked form
        self._cards: OrderedDict[str, CardRecord] = OrderedDict()
        self._successors: OrderedDict[int, int] = OrderedDict()
        self._memory = threading.Lock()

    def dispose(self) -> None:
        """Close the engine's pooled connections (the platform gives the registry its own)."""
        self._engine.dispose()

    # --- transactions ---------------------------------------------------------------------

    @property
    def _current(self) -> Connection | None:
        """This thread's transaction's connection, if it is in one."""
        current: Connection | None = getattr(self._local, "connection", None)
        return current

    @contextmanager
    def transaction(self) -> Iterator[None]:
        current = self._current
        if current is not None:
            yield
            return
        with unavailable_as_such(), self._engine.begin() as connection:
            self._local.connection = connection
            try:
                yield
            finally:
                self._local.connection = None

    @property
    def _lent(self) -> Connection | None:
        """The store's transaction connection this thread may read on (reading_on), if any."""
        lent: Connection | None = getattr(self._local, "lent", None)
        return lent

    @contextmanager
    def reading_on(self, connection: Connection) -> Iterator[None]:
        """Answer this thread's questions on ``connection`` while the block runs: a transaction
        the platform's store holds on this registry's database, which writes no J-LIS table.

        What it reads there is committed J-LIS data (on PostgreSQL each statement sees what
        committed before it; on SQLite the store holds the write lock, so no J-LIS change can
        commit meanwhile), so it may be remembered as a question outside any transaction is.
        The registry's own transactions (writes) still run on its own connections.
        """
        if self._lent is not None:
            yield
            return
        self._local.lent = connection
        try:
            yield
        finally:
            self._local.lent = None
            if getattr(self._local, "sent_ahead", False):
                self._local.sent_ahead = False
                forget_ahead(connection)

    def prefetch_status(self, serial: int) -> None:
        """On a connection the store lent (PostgreSQL), the certificate's question goes with
        the store's next statement, in its round trip (see ``DriverStatement.send_ahead``);
        asked next, :meth:`status` takes that answer. Nothing elsewhere."""
        if not self._sends_ahead:
            return
        lent = self._lent
        if lent is not None and _FIND.send_ahead(lent, {"serial": str(serial)}):
            self._local.sent_ahead = True

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        current = self._current or self._lent
        if current is not None:
            yield current
            return
        with unavailable_as_such(), self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # A question is one statement: on its own it sees committed data as a READ
                # COMMITTED transaction would, without the BEGIN and COMMIT round trips
                # (psycopg's autocommit is a client-side switch; the pool resets it).
                yield connection.execution_options(isolation_level="AUTOCOMMIT")
                return
            connection.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            with connection.begin():
                yield connection

    def _ask(self, statement: DriverStatement, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One statement's rows: inside this thread's transaction (the registry's own, or the
        one the store lent it) if there is one, otherwise on a pooled driver connection
        outside any transaction. On its own, one statement sees
        committed data (sqlite3's and psycopg's autocommit), so the issuance path's question
        costs neither BEGIN and COMMIT nor a SQLAlchemy connection around it."""
        current = self._current or self._lent
        if current is not None:
            return statement.rows(current, params)
        dialect = self._engine.dialect
        with unavailable_as_such():
            connection = self._engine.raw_connection()
            # sqlite3 runs with its own transaction handling off (make_engine): autocommit.
            # psycopg's autocommit is set back before the connection returns to the pool, whose
            # other users (transaction()) rely on psycopg beginning a transaction.
            postgres = dialect.name == "postgresql"
            try:
                if postgres:
                    connection.driver_connection.autocommit = True  # type: ignore[union-attr]
                return statement.rows_on(connection, dialect, params)
            finally:
                if postgres:
                    connection.driver_connection.autocommit = False  # type: ignore[union-attr]
                connection.close()

    def _writing(self) -> Connection:
        current = self._current
        if current is None:  # every write comes through a rule, which opens a transaction
            raise RuntimeError("registry writes run inside SqlRegistry.transaction()")
        return current

    # --- questions ------------------------------------------------------------------------

    @property
    def _committed(self) -> bool:
        """Outside a transaction what is read is committed, so it may be remembered."""
        return self._current is None

    def _remember(self, memory: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        with self._memory:
            memory[key] = value
            if len(memory) > REMEMBERED:
                memory.popitem(last=False)

    def _stored_entry(self, serial: int) -> CertificateEntry | None:
        committed = self._committed
        rows = self._ask(_FIND, {"serial": str(serial)})
        if not rows:
            return None
        entry = _entry(rows[0])
        if committed and serial not in self._known:
            self._remember(self._known, serial, _unrevoked(entry))
            if rows[0]["card_card_id"] is not None:
                self._remember(self._cards, entry.card_id, _card_of(rows[0]))
        return entry

    def entry(self, serial: int) -> CertificateEntry | None:
        stored = self._stored_entry(serial)
        if stored is None and self.legacy is not None:
            return self.legacy.entry(serial)
        return stored

    def card(self, card_id: str) -> CardRecord | None:
        remembered = self._cards.get(card_id)
        if remembered is not None:
            return remembered
        committed = self._committed
        rows = self._ask(_CARD, {"card": card_id})
        if not rows:
            return self.legacy.card(card_id) if self.legacy is not None else None
        if committed:
            self._remember(self._cards, card_id, _card(rows[0]))
        return _card(rows[0])

    def holder_facts(self, serial: int) -> HolderFacts | None:
        """As the rules say; a certificate and card this process read before cost nothing."""
        known = self._known.get(serial)
        card = self._cards.get(known.card_id) if known is not None else None
        if card is not None:
            return HolderFacts(card.person_ref, card.applied_on)
        return super().holder_facts(serial)

    def predecessor(self, serial: int) -> int | None:
        known = self._known.get(serial)
        if known is not None:
            return known.replaces
        return super().predecessor(serial)

    def successor(self, serial: int) -> int | None:
        remembered = self._successors.get(serial)
        if remembered is not None:
            return remembered
        committed = self._committed
        rows = self._ask(_SUCCESSOR, {"serial": str(serial)})
        found = rows[0]["serial"] if rows else None
        if found is None:
            return self.legacy.successor(serial) if self.legacy is not None else None
        if committed:
            self._remember(self._successors, serial, int(found))
        return int(found)

    def reissued_as(self, card_id: str) -> str | None:
        rows = self._ask(_REISSUED_AS, {"card": card_id})
        found = rows[0]["card_id"] if rows else None
        if found is None:
            return self.legacy.reissued_as(card_id) if self.legacy is not None else None
        return str(found)

    def revoked(self, kind: str) -> list[CertificateEntry]:
        older = self.legacy.revoked(kind) if self.legacy is not None else []
        with self._reading() as connection:
            stored = [_entry(row) for row in _REVOKED.rows(connection, {"kind": kind})]
            # The database's row is the answer for a certificate it holds, revoked or not.
            held = {"serials": [str(e.serial) for e in older]}
            shadowed = (
                {int(row["serial"]) for row in _HELD.rows(connection, held)} if older else set()
            )
        merged = stored + [entry for entry in older if entry.serial not in shadowed]
        return sorted(merged, key=lambda entry: entry.serial)

    def entries(self) -> list[CertificateEntry]:
        with self._reading() as connection:
            stored = {entry.serial: entry for entry in map(_entry, _ALL.rows(connection))}
        older = self.legacy.entries() if self.legacy is not None else []
        merged = {**{entry.serial: entry for entry in older}, **stored}
        return sorted(merged.values(), key=lambda entry: entry.serial)

    # --- changes --------------------------------------------------------------------------

    def next_crl_number(self) -> int:
        with self.transaction():
            connection = self._writing()
            last = _CRL_NUMBER.scalar(connection)
            if last is None:
                raise RuntimeError("the jlis_crl_number row is missing: migrate the database")
            # Never below a number the file's J-LIS already used for its CRLs.
            number = max(int(last), self.legacy.crl_number if self.legacy else 0) + 1
            _SET_CRL_NUMBER.run(connection, {"n": number})
            return number

    def _add_entry(self, entry: CertificateEntry) -> None:
        connection = self._writing()
        if _ADD_CERTIFICATE.rows(connection, _entry_row(entry)):
            return
        # Another writer got there first (the unique serial or ``replaces``).
        stored = self._stored_entry(entry.serial)
        if stored is not None and _unrevoked(stored) == entry:
            return
        if stored is not None:
            raise ValueError(f"certificate {entry.serial} is already recorded otherwise")
        taken = self.successor(entry.replaces or 0)
        raise ValueError(f"certificate {entry.replaces} was already replaced by {taken}")

    def _add_card(self, card: CardRecord) -> None:
        connection = self._writing()
        if _ADD_CARD.rows(connection, _card_row(card)):
            return
        row = _CARD.one(connection, {"card": card.card_id})
        if row is not None and _card(row) == card:
            return
        if row is not None:
            raise ValueError(f"card {card.card_id} is already recorded otherwise")
        taken = self.reissued_as(card.replaces or "")
        raise ValueError(f"card {card.replaces} was already reissued as {taken}")

    def _add_revocation(self, entry: CertificateEntry, at: datetime, reason: str) -> None:
        connection = self._writing()
        # A certificate known only from the file is copied in (the file is never written).
        _ADD_CERTIFICATE.rows(connection, _entry_row(_unrevoked(entry)))
        _REVOKE.run(connection, {"serial": str(entry.serial), "at": at, "reason": reason})


def _unrevoked(entry: CertificateEntry) -> CertificateEntry:
    return replace(entry, revoked_at=None, reason=None)


def _entry_row(entry: CertificateEntry) -> dict[str, Any]:
    return {
        "serial": str(entry.serial),
        "kind": entry.kind,
        "card_id": entry.card_id,
        "not_after": entry.not_after,
        "replaces": None if entry.replaces is None else str(entry.replaces),
        "revoked_at": entry.revoked_at,
        "reason": entry.reason,
        "not_before": entry.not_before,
    }


def _entry(row: Mapping[Any, Any]) -> CertificateEntry:
    """A ``jlis_certificates`` row, read through SQLAlchemy (``row._mapping``) or the driver."""
    return CertificateEntry(
        serial=int(row["serial"]),
        kind=cast(Kind, row["kind"]),
        card_id=row["card_id"],
        not_after=row["not_after"],
        replaces=None if row["replaces"] is None else int(row["replaces"]),
        revoked_at=row["revoked_at"],
        reason=row["reason"],
        not_before=row["not_before"],
    )


def _card_row(card: CardRecord) -> dict[str, Any]:
    return {
        "card_id": card.card_id,
        "person_ref": card.person_ref,
        "applied_on": card.applied_on,
        "issued_on": card.issued_on,
        "replaces": card.replaces,
    }


def _card_of(row: Mapping[Any, Any]) -> CardRecord:
    """The card columns of :data:`_CERTIFICATE_AND_CARD`."""
    return _card(row, card_id="card_card_id", replaces="card_replaces")


def _card(
    row: Mapping[Any, Any], *, card_id: str = "card_id", replaces: str = "replaces"
) -> CardRecord:
    """A ``jlis_cards`` row (its key and link columns may be labelled otherwise in a join),
    read through SQLAlchemy (``row._mapping``) or the driver."""
    return CardRecord(
        card_id=row[card_id],
        person_ref=row["person_ref"],
        applied_on=row["applied_on"],
        issued_on=row["issued_on"],
        replaces=row[replaces],
    )
