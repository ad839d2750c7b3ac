"""The Store / UnitOfWork contract (mynahil.reference_impl.mykey.ports), on SQLite and PostgreSQL.

Every test runs on both backends (the ``store`` fixture), against a real database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from mynahil.reference_impl.audit import AuditEvent
from mynahil.reference_impl.mykey.model import (
    Challenge,
    LoginMethod,
    MyKeyRecord,
    MyKeyStatus,
    Purpose,
    Session,
)
from mynahil.reference_impl.mykey.ports import (
    Conflict,
    MyKeyIdUnavailable,
    SerialBound,
    Store,
    UnitOfWork,
)
from mynahil.reference_impl.store import SqlStore
from mynahil.timezone import JST

NOW = datetime(2020, 9, 1, 0, 0, 0, 123456, tzinfo=UTC)
SERIAL = 2**100 + 12345  # user-authentication serials are ~100-bit integers


def challenge(challenge_id: str = "c1", purpose: Purpose = Purpose.ISSUE) -> Challenge:
    return Challenge(challenge_id, b"\x00nonce\xff" * 4, purpose, NOW, NOW + timedelta(minutes=2))


def new_record(store: SqlStore, mykey_id: str = "AAAA-BBBB") -> MyKeyRecord:
    with store.transaction() as uow:
        return uow.create_record(mykey_id, NOW)


class Abandoned(Exception):
    """Raised inside a transaction to make it roll back."""


def abandon(store: SqlStore, work: Callable[[UnitOfWork], object]) -> None:
    """Do ``work`` in a transaction, then raise out of it."""
    with store.transaction() as uow:
        work(uow)
        raise Abandoned


def race(workers: int, job: Callable[[int], object]) -> list[object]:
    """Run ``job(i)`` in ``workers`` threads released together; their results in order."""
    start = threading.Barrier(workers)

    def run(i: int) -> object:
        start.wait()
        return job(i)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))


def test_sql_store_is_a_store(store: SqlStore) -> None:
    """SqlStore satisfies the Store protocol the services are written against (mypy checks)."""
    as_port: Store = store
    with as_port.transaction() as uow:
        assert uow.record(1) is None


# --- challenges -----------------------------------------------------------------------------


def test_challenge_is_consumed_once(store: SqlStore) -> None:
    """First consumption returns it unused; later ones return it with when it was used."""
    with store.transaction() as uow:
        uow.add_challenge(challenge())
    later = NOW + timedelta(seconds=5)
    with store.transaction() as uow:
        first = uow.consume_challenge("c1", later)
    with store.transaction() as uow:
        second = uow.consume_challenge("c1", later + timedelta(seconds=1))
    assert first == challenge()
    assert second == replace(challenge(), used_at=later)


def test_unknown_challenge_is_none(store: SqlStore) -> None:
    with store.transaction() as uow:
        assert uow.consume_challenge("nope", NOW) is None


def test_challenge_purpose_and_nonce_round_trip(store: SqlStore) -> None:
    with store.transaction() as uow:
        uow.add_challenge(challenge("login", Purpose.LOGIN))
        got = uow.consume_challenge("login", NOW)
    assert got is not None
    assert got.purpose is Purpose.LOGIN
    assert got.nonce == b"\x00nonce\xff" * 4


def test_challenge_consumed_once_under_racing_threads(store: SqlStore) -> None:
    """Eight concurrent consumers: exactly one sees it unused."""
    with store.transaction() as uow:
        uow.add_challenge(challenge())

    def consume(_: int) -> object:
        with store.transaction() as uow:
            got = uow.consume_challenge("c1", NOW + timedelta(seconds=1))
        assert got is not None
        return got.used_at

    used_ats = race(8, consume)
    assert used_ats.count(None) == 1
    assert set(used_ats) == {None, NOW + timedelta(seconds=1)}


def test_consumption_rolls_back_with_its_transaction(store: SqlStore) -> None:
    with store.transaction() as uow:
        uow.add_challenge(challenge())
    with pytest.raises(Abandoned):
        abandon(store, lambda uow: uow.consume_challenge("c1", NOW))
    with store.transaction() as uow:
        got = uow.consume_challenge("c1", NOW)
    assert got is not None
    assert got.used_at is None


# --- records --------------------------------------------------------------------------------


def test_create_and_find_record(store: SqlStore) -> None:
    record = new_record(store)
    assert record == MyKeyRecord(record.record_id, "AAAA-BBBB", MyKeyStatus.ACTIVE, NOW)
    with store.transaction() as uow:
        assert uow.record(record.record_id) == record
        assert uow.record_by_mykey_id("AAAA-BBBB") == record
        assert uow.record_by_mykey_id("CCCC-DDDD") is None
        assert uow.record(record.record_id + 1) is None


def test_record_ids_are_distinct(store: SqlStore) -> None:
    ids = {new_record(store, f"ID-{i}").record_id for i in range(3)}
    assert len(ids) == 3


def test_duplicate_mykey_id_conflicts_and_transaction_goes_on(store: SqlStore) -> None:
    new_record(store)
    with store.transaction() as uow:
        with pytest.raises(Conflict, match="AAAA-BBBB"):
            uow.create_record("AAAA-BBBB", NOW)
        other = uow.create_record("CCCC-DDDD", NOW)  # the transaction is still usable
    with store.transaction() as uow:
        assert uow.record(other.record_id) == other


def test_mykey_id_used_sees_current_and_retired(store: SqlStore) -> None:
    with store.transaction() as uow:
        assert not uow.mykey_id_used("AAAA-BBBB")
    record = new_record(store)
    with store.transaction() as uow:
        assert uow.mykey_id_used("AAAA-BBBB")
        uow.change_mykey_id(record.record_id, "CCCC-DDDD", NOW)
    with store.transaction() as uow:
        assert uow.mykey_id_used("AAAA-BBBB")  # retired
        assert uow.mykey_id_used("CCCC-DDDD")  # current
        assert not uow.mykey_id_used("EEEE-FFFF")


def test_update_record_persists_status_password_and_lock(store: SqlStore) -> None:
    record = new_record(store)
    changed = MyKeyRecord(
        record.record_id,
        record.mykey_id,
        MyKeyStatus.REVOKED,
        record.created_at,
        password_hash="scrypt$abc",
        password_failures=6,
        locked_until=NOW + timedelta(minutes=30),
        revoked_at=NOW + timedelta(hours=1),
    )
    with store.transaction() as uow:
        uow.update_record(changed)
    with store.transaction() as uow:
        assert uow.record(record.record_id) == changed


def test_update_record_never_changes_the_id(store: SqlStore) -> None:
    record = new_record(store)
    with store.transaction() as uow:
        uow.update_record(MyKeyRecord(record.record_id, "ZZZZ-ZZZZ", MyKeyStatus.ACTIVE, NOW))
        assert uow.record_by_mykey_id("AAAA-BBBB") == record


def test_update_of_unknown_record_is_an_error(store: SqlStore) -> None:
    with store.transaction() as uow, pytest.raises(LookupError):
        uow.update_record(MyKeyRecord(999, "AAAA-BBBB", MyKeyStatus.ACTIVE, NOW))


# --- certificate bindings -------------------------------------------------------------------


def test_bind_and_find_by_large_serial(store: SqlStore) -> None:
    record = new_record(store)
    with store.transaction() as uow:
        uow.bind_serial(record.record_id, SERIAL, NOW)
        uow.bind_serial(record.record_id, SERIAL + 1, NOW)  # a renewed certificate
    with store.transaction() as uow:
        assert uow.record_by_serial(SERIAL) == record
        assert uow.record_by_serial(SERIAL + 1) == record
        assert uow.record_by_serial(SERIAL + 2) is None


def test_bound_serial_conflicts_and_transaction_goes_on(store: SqlStore) -> None:
    first = new_record(store)
    second = new_record(store, "CCCC-DDDD")
    with store.transaction() as uow:
        uow.bind_serial(first.record_id, SERIAL, NOW)
    with store.transaction() as uow:
        with pytest.raises(Conflict, match=str(SERIAL)):
            uow.bind_serial(second.record_id, SERIAL, NOW)
        with pytest.raises(Conflict):
            uow.bind_serial(first.record_id, SERIAL, NOW)
        uow.bind_serial(second.record_id, SERIAL + 1, NOW)
    with store.transaction() as uow:
        assert uow.record_by_serial(SERIAL) == first
        assert uow.record_by_serial(SERIAL + 1) == second


def test_binding_to_an_unknown_record_is_not_a_conflict(store: SqlStore) -> None:
    """A missing record is a programming error (foreign key), not a taken value."""
    with pytest.raises(IntegrityError), store.transaction() as uow:
        uow.bind_serial(999, SERIAL, NOW)


def test_revoked_record_is_not_found_by_serial(store: SqlStore) -> None:
    record = new_record(store)
    with store.transaction() as uow:
        uow.bind_serial(record.record_id, SERIAL, NOW)
        uow.update_record(MyKeyRecord(record.record_id, "AAAA-BBBB", MyKeyStatus.REVOKED, NOW))
        assert uow.record_by_serial(SERIAL) is None
        assert uow.record_by_mykey_id("AAAA-BBBB") is not None  # revoked, still its ID


@pytest.mark.parametrize("binding", ["bound", "unbound", "revoked"])
@pytest.mark.parametrize("state", ["fresh", "used", "unknown"])
def test_consume_and_look_up_answers_as_the_two_calls_do(
    store: SqlStore, state: str, binding: str
) -> None:
    """The challenge as consume_challenge gives it (taken once), beside the record as
    record_by_serial gives it: one statement on PostgreSQL, two on SQLite."""
    record = new_record(store)
    earlier = NOW - timedelta(seconds=5)
    with store.transaction() as uow:
        if state != "unknown":
            uow.add_challenge(challenge())
        if state == "used":
            uow.consume_challenge("c1", earlier)
        if binding != "unbound":
            uow.bind_serial(record.record_id, SERIAL, NOW)
        if binding == "revoked":
            uow.update_record(replace(record, status=MyKeyStatus.REVOKED, revoked_at=NOW))
    with store.transaction() as uow:
        taken, found = uow.consume_challenge_and_look_up("c1", NOW, SERIAL)
        assert found == uow.record_by_serial(SERIAL)
        again = uow.consume_challenge("c1", NOW)
    assert found == (record if binding == "bound" else None)
    if state == "unknown":
        assert taken is None
        assert again is None
        return
    assert taken is not None
    assert again is not None
    assert replace(taken, used_at=None) == challenge()
    assert taken.used_at == (earlier if state == "used" else None)
    assert again.used_at == (earlier if state == "used" else NOW)  # taken once, by the first


def test_unbind_returns_serials_and_frees_them(store: SqlStore) -> None:
    record = new_record(store)
    other = new_record(store, "CCCC-DDDD")
    with store.transaction() as uow:
        uow.bind_serial(record.record_id, SERIAL + 1, NOW)
        uow.bind_serial(record.record_id, SERIAL, NOW)
        uow.bind_serial(other.record_id, 7, NOW)
    with store.transaction() as uow:
        assert uow.unbind_serials(record.record_id) == [SERIAL, SERIAL + 1]
        assert uow.unbind_serials(record.record_id) == []
    with store.transaction() as uow:
        assert uow.record_by_serial(SERIAL) is None
        assert uow.record_by_serial(7) == other
        third = uow.create_record("EEEE-FFFF", NOW)
        uow.bind_serial(third.record_id, SERIAL, NOW)  # the card may issue a new ID
        assert uow.record_by_serial(SERIAL) == third


# --- changing and retiring IDs --------------------------------------------------------------


def test_change_retires_the_old_id(store: SqlStore) -> None:
    record = new_record(store)
    with store.transaction() as uow:
        uow.bind_serial(record.record_id, SERIAL, NOW)
        uow.change_mykey_id(record.record_id, "CCCC-DDDD", NOW)
    with store.transaction() as uow:
        assert uow.record_by_mykey_id("AAAA-BBBB") is None
        changed = uow.record_by_mykey_id("CCCC-DDDD")
        assert changed is not None
        assert changed.record_id == record.record_id
        assert uow.record_by_serial(SERIAL) == changed


@pytest.mark.parametrize("taken", ["CCCC-DDDD", "AAAA-BBBB", "EEEE-FFFF"])
def test_change_to_a_taken_or_retired_id_conflicts(store: SqlStore, taken: str) -> None:
    """Another record's ID, a retired ID, the record's own ID: all refused, nothing changed."""
    record = new_record(store)
    new_record(store, "CCCC-DDDD")
    with store.transaction() as uow:
        uow.change_mykey_id(record.record_id, "EEEE-FFFF", NOW)  # retires AAAA-BBBB
    with store.transaction() as uow:
        with pytest.raises(Conflict, match=taken):
            uow.change_mykey_id(record.record_id, taken, NOW)
        current = uow.record(record.record_id)
        assert current is not None
        assert current.mykey_id == "EEEE-FFFF"
        uow.change_mykey_id(record.record_id, "GGGG-HHHH", NOW)  # still usable
    with store.transaction() as uow:
        assert uow.mykey_id_used("EEEE-FFFF")
        assert uow.record_by_mykey_id("GGGG-HHHH") is not None


def test_retired_id_is_never_issued_again(store: SqlStore) -> None:
    record = new_record(store)
    with store.transaction() as uow:
        uow.change_mykey_id(record.record_id, "CCCC-DDDD", NOW)
    with store.transaction() as uow:
        with pytest.raises(Conflict, match="AAAA-BBBB"):
            uow.create_record("AAAA-BBBB", NOW)
        assert uow.record_by_mykey_id("AAAA-BBBB") is None


def test_id_being_retired_concurrently_is_not_issued(store: SqlStore) -> None:
    """create_record racing a change that retires the same ID waits for it, then conflicts."""
    record = new_record(store)
    changed, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def change() -> None:
        with store.transaction() as uow:
            uow.change_mykey_id(record.record_id, "CCCC-DDDD", NOW)
            changed.set()
            release.wait(10)

    def create() -> None:
        try:
            with store.transaction() as uow:
                outcome.append(uow.create_record("AAAA-BBBB", NOW))
        except Conflict as exc:
            outcome.append(exc)

    changer = threading.Thread(target=change)
    changer.start()
    assert changed.wait(10)
    creator = threading.Thread(target=create)
    creator.start()
    creator.join(0.3)  # it is blocked behind the uncommitted change
    release.set()
    changer.join(10)
    creator.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Conflict)


def test_change_of_unknown_record_is_an_error(store: SqlStore) -> None:
    with store.transaction() as uow, pytest.raises(LookupError):
        uow.change_mykey_id(999, "CCCC-DDDD", NOW)


# --- sessions -------------------------------------------------------------------------------


def test_sessions_are_kept_and_ended_per_record(store: SqlStore) -> None:
    one, two = new_record(store), new_record(store, "CCCC-DDDD")
    card = Session("a" * 64, one.record_id, LoginMethod.CARD, NOW, NOW + timedelta(minutes=30))
    password = Session("b" * 64, one.record_id, LoginMethod.PASSWORD, NOW, NOW)
    theirs = Session("c" * 64, two.record_id, LoginMethod.CARD, NOW, NOW)
    with store.transaction() as uow:
        for session in (card, password, theirs):
            uow.add_session(session)
    with store.transaction() as uow:
        assert uow.session("a" * 64) == card
        assert uow.session("b" * 64) == password
        assert uow.session("d" * 64) is None
        uow.end_sessions(one.record_id)
    with store.transaction() as uow:
        assert uow.session("a" * 64) is None
        assert uow.session("b" * 64) is None
        assert uow.session("c" * 64) == theirs


# --- transactions and time ------------------------------------------------------------------


def test_exception_rolls_back_everything(store: SqlStore) -> None:
    def work(uow: UnitOfWork) -> None:
        record = uow.create_record("AAAA-BBBB", NOW)
        uow.bind_serial(record.record_id, SERIAL, NOW)
        uow.add_challenge(challenge())
        uow.add_session(Session("a" * 64, record.record_id, LoginMethod.CARD, NOW, NOW))
        uow.audit(AuditEvent("issue", "ok", record.record_id), NOW)

    with pytest.raises(Abandoned):
        abandon(store, work)
    with store.transaction() as uow:
        assert not uow.mykey_id_used("AAAA-BBBB")
        assert uow.record_by_serial(SERIAL) is None
        assert uow.consume_challenge("c1", NOW) is None
        assert uow.session("a" * 64) is None
    assert list(store.audit_records()) == []


def test_committed_work_survives_reopening(store_url: str) -> None:
    with SqlStore.open(store_url) as first, first.transaction() as uow:
        record = uow.create_record("AAAA-BBBB", NOW)
        uow.audit(AuditEvent("issue", "ok", record.record_id), NOW)
    with SqlStore.open(store_url) as second:
        with second.transaction() as uow:
            assert uow.record(record.record_id) == record
        assert second.verify_audit() == (1, None)


def test_timestamps_come_back_aware_utc_to_the_microsecond(store: SqlStore) -> None:
    """A +09:00 time is stored as the same instant and read back in UTC."""
    tokyo = datetime(2021, 3, 31, 23, 59, 59, 999999, tzinfo=JST)
    with store.transaction() as uow:
        uow.add_challenge(Challenge("c1", b"n", Purpose.LOGIN, tokyo, tokyo, None))
        record = uow.create_record("AAAA-BBBB", tokyo)
    with store.transaction() as uow:
        got = uow.consume_challenge("c1", tokyo)
        stored = uow.record(record.record_id)
    assert got is not None
    assert stored is not None
    for moment in (got.created_at, got.expires_at, stored.created_at, record.created_at):
        assert moment == tokyo
        assert moment.utcoffset() == timedelta(0)
        assert moment.isoformat() == "2021-03-31T14:59:59.999999+00:00"


def test_naive_timestamps_are_refused(store: SqlStore) -> None:
    with pytest.raises(StatementError, match="naive"), store.transaction() as uow:
        uow.create_record("AAAA-BBBB", datetime(2020, 9, 1))


# --- audit ----------------------------------------------------------------------------------


def test_audit_appends_in_order_and_verifies(store: SqlStore) -> None:
    with store.transaction() as uow:
        uow.audit(AuditEvent("issue", "ok", 1, {"serial": str(SERIAL), "existing": False}), NOW)
        uow.audit(AuditEvent("login_card", "refused:challenge_used"), NOW.astimezone(JST))
    records = list(store.audit_records())
    assert [r.seq for r in records] == [1, 2]
    assert records[0].details == {"serial": str(SERIAL), "existing": False}
    assert records[1].details == {}
    assert records[1].at == NOW
    assert records[1].prev_hash == records[0].hash
    assert store.verify_audit() == (2, None)


def test_rolled_back_audit_leaves_no_gap(store: SqlStore) -> None:
    with store.transaction() as uow:
        uow.audit(AuditEvent("a", "ok"), NOW)
    with pytest.raises(Abandoned):
        abandon(store, lambda uow: uow.audit(AuditEvent("b", "ok"), NOW))
    with store.transaction() as uow:
        uow.audit(AuditEvent("c", "ok"), NOW)
    assert [(r.seq, r.action) for r in store.audit_records()] == [(1, "a"), (2, "c")]
    assert store.verify_audit() == (2, None)


def test_audit_records_are_read_in_batches(store: SqlStore) -> None:
    with store.transaction() as uow:
        for i in range(7):
            uow.audit(AuditEvent("x", "ok", i), NOW)
    assert [r.seq for r in store.audit_records(batch_size=3)] == list(range(1, 8))
    assert [r.seq for r in store.audit_records(batch_size=7)] == list(range(1, 8))
    with pytest.raises(ValueError, match="batch_size"):
        next(store.audit_records(batch_size=0))


def test_concurrent_audit_appends_form_one_chain(store: SqlStore) -> None:
    """16 threads appending 25 records each: 400 records, seq 1..400, chain intact."""

    def append(worker: int) -> object:
        for i in range(25):
            with store.transaction() as uow:
                uow.audit(AuditEvent("load", "ok", worker, {"i": i}), NOW)
        return worker

    race(16, append)
    records = list(store.audit_records())
    assert [r.seq for r in records] == list(range(1, 401))
    assert sorted((r.record_id, r.details["i"]) for r in records) == [
        (w, i) for w in range(16) for i in range(25)
    ]
    assert store.verify_audit() == (400, None)


def test_memory_store_serialises_threads() -> None:
    """``sqlite://`` is one shared connection: concurrent transactions still stay apart."""
    with SqlStore.open("sqlite://") as store:

        def append(worker: int) -> object:
            for _ in range(10):
                with store.transaction() as uow:
                    uow.audit(AuditEvent("load", "ok", worker), NOW)
            return worker

        race(4, append)
        assert store.verify_audit() == (40, None)


def test_audit_lock_does_not_deadlock_with_row_locks(postgres_url: str) -> None:
    """PostgreSQL: audit mid-way, then touch a record another transaction holds, which audits.

    Were the head row locked at ``audit()``, each transaction would wait for the other's lock.
    (SQLite runs write transactions one at a time, so this cannot arise there.)
    """
    with SqlStore.open(postgres_url) as store:
        record = new_record(store)
        audited, changed = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def linker() -> None:
            try:
                with store.transaction() as uow:
                    uow.audit(AuditEvent("certificate_linked", "ok", record.record_id), NOW)
                    audited.set()
                    assert changed.wait(10)
                    # The foreign key check waits for the change's lock on the record.
                    uow.add_session(Session("a" * 64, record.record_id, LoginMethod.CARD, NOW, NOW))
                    uow.audit(AuditEvent("login_card", "ok", record.record_id), NOW)
            except BaseException as exc:
                errors.append(exc)

        def changer() -> None:
            try:
                assert audited.wait(10)
                with store.transaction() as uow:
                    uow.change_mykey_id(record.record_id, "CCCC-DDDD", NOW)
                    changed.set()
                    time.sleep(0.2)  # let the linker block on the record
                    uow.audit(AuditEvent("change_id", "ok", record.record_id), NOW)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=linker), threading.Thread(target=changer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert errors == []
        assert [r.action for r in store.audit_records()] == [
            "change_id",
            "certificate_linked",
            "login_card",
        ]
        assert store.verify_audit() == (3, None)


def test_unsupported_database_is_refused_with_advice() -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path.*postgresql\+psycopg"):
        SqlStore.open("mysql://user:secret@localhost/db")


def test_transactions_in_a_row_reuse_one_connection(store: SqlStore) -> None:
    """A connection is kept open between transactions (a pool checkout and checkin cost more
    than an issuance's BEGIN and COMMIT), and a rolled-back transaction leaves it usable;
    dispose() closes the kept ones too."""
    from sqlalchemy import event

    checkouts: list[object] = []
    event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))
    with store.transaction() as uow:  # a first transaction may find none kept yet
        uow.add_challenge(challenge("c0"))
    checkouts.clear()
    for n in range(1, 10):
        with store.transaction() as uow:
            uow.add_challenge(challenge(f"c{n}"))
    with pytest.raises(Abandoned):
        abandon(store, lambda uow: uow.add_challenge(challenge("rolled-back")))
    with store.transaction() as uow:
        assert uow.consume_challenge("c9", NOW) is not None
        assert uow.consume_challenge("rolled-back", NOW) is None
    assert checkouts == []
    checkedout = getattr(store.engine.pool, "checkedout", None)
    store.dispose()
    if callable(checkedout) and not store.in_memory:
        assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


# --- a new record for a person, bound at once (an issuance's writes) --------------------------

VALID = (NOW - timedelta(days=1), NOW + timedelta(days=365 * 5))


def test_a_bound_record_is_created_with_its_person(store: SqlStore) -> None:
    with store.transaction() as uow:
        record = uow.create_bound_record("AAAA-BBBB", NOW, "person-1", SERIAL, VALID)
    assert record.person_id is not None
    with store.transaction() as uow:
        assert uow.record_by_serial(SERIAL) == record
        assert record.person_id == uow.person("person-1", NOW)
        assert uow.person_record(record.person_id) == record
        periods = uow.certificate_periods([record.record_id])[record.record_id]
        assert [(p.not_before, p.not_after) for p in periods if p] == [VALID]


def test_a_taken_or_retired_id_makes_no_bound_record(store: SqlStore) -> None:
    kept = new_record(store, "TAKE-NNNN")
    with store.transaction() as uow:
        uow.change_mykey_id(kept.record_id, "KEPT-IDID", NOW)  # TAKE-NNNN is retired now
        for taken in ("KEPT-IDID", "TAKE-NNNN"):
            with pytest.raises(MyKeyIdUnavailable):
                uow.create_bound_record(taken, NOW, "person-2", SERIAL, VALID)
        assert uow.record_by_serial(SERIAL) is None  # nothing bound, no record left behind
        fresh = uow.create_bound_record("FRES-HIDD", NOW, "person-2", SERIAL, VALID)
    assert fresh.person_id is not None
    with store.transaction() as uow:
        assert uow.record_by_serial(SERIAL) == fresh
        assert uow.person_record(fresh.person_id) == fresh


def test_a_bound_serial_makes_no_second_record(store: SqlStore) -> None:
    with store.transaction() as uow:
        first = uow.create_bound_record("AAAA-BBBB", NOW, "person-1", SERIAL, VALID)
    with store.transaction() as uow:
        with pytest.raises(SerialBound):
            uow.create_bound_record("CCCC-DDDD", NOW, "person-3", SERIAL, VALID)
        assert uow.record_by_mykey_id("CCCC-DDDD") is None  # undone; the transaction goes on
        assert uow.record_by_serial(SERIAL) == first


def test_a_person_another_transaction_creates_meanwhile_is_found(store: SqlStore) -> None:
    """On PostgreSQL the one statement that creates the person and the record cannot see a
    person committed while it waited on the person's unique key: the store then finds the
    person the slow way. Either way the record is that person's."""
    created, go_on = threading.Event(), threading.Event()
    person_ids: list[int] = []

    def create_the_person() -> None:
        with store.transaction() as uow:
            person_ids.append(uow.person("person-4", NOW))
            created.set()
            go_on.wait(10)

    with ThreadPoolExecutor(2) as pool:
        other = pool.submit(create_the_person)
        assert created.wait(10)

        def issue() -> MyKeyRecord:
            with store.transaction() as uow:
                return uow.create_bound_record("AAAA-BBBB", NOW, "person-4", SERIAL, VALID)

        issued = pool.submit(issue)
        time.sleep(0.3)  # the issuance now waits: on the person's key, or SQLite's lock
        go_on.set()
        other.result()
        record = issued.result(timeout=10)
    assert record.person_id == person_ids[0]
