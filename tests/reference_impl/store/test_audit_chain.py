"""The audit log is tamper-evident (DESIGN.md: "the audit log is hash-chained").

Stored logs are altered behind the store's back with plain SQL, and the pure chain functions
of ``mynahil.reference_impl.audit`` are checked with Hypothesis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, update

from mynahil.reference_impl.audit import (
    GENESIS,
    AuditEvent,
    AuditRecord,
    ChainBreak,
    chain_hash,
    verify_chain,
)
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.tables import audit_head, audit_log

NOW = datetime(2020, 9, 1, 9, 0, tzinfo=UTC)


def write_log(store: SqlStore, count: int = 5) -> None:
    for i in range(count):
        with store.transaction() as uow:
            uow.audit(AuditEvent("issue", "ok", i, {"serial": str(1000 + i)}), NOW)


def tamper(store: SqlStore, seq: int, **values: Any) -> None:
    with store.engine.begin() as connection:
        connection.execute(update(audit_log).where(audit_log.c.seq == seq).values(**values))


def broken_at(store: SqlStore) -> ChainBreak:
    _, found = store.verify_audit()
    assert found is not None, "tampering went unnoticed"
    return found


def test_untouched_log_verifies(store: SqlStore) -> None:
    write_log(store)
    assert store.verify_audit() == (5, None)


def test_empty_log_verifies(store: SqlStore) -> None:
    assert store.verify_audit() == (0, None)


@pytest.mark.parametrize("records", [1, 2])
def test_without_the_head_row_an_audited_unit_commits_nothing(
    store: SqlStore, records: int
) -> None:
    """A database made without the migrations' head row: the append says so, and the unit's
    other writes roll back with it, whether the unit has one record (on PostgreSQL appended
    by one statement that reads the head itself) or several."""
    with store.engine.begin() as connection:
        connection.execute(delete(audit_head))

    def issue_and_audit() -> None:
        with store.transaction() as uow:
            uow.create_record("123456789012", NOW)
            for i in range(records):
                uow.audit(AuditEvent("issue", "ok", None, {"n": i}), NOW)

    with pytest.raises(RuntimeError, match="audit_head row is missing"):
        issue_and_audit()
    with store.transaction() as uow:
        assert uow.record_by_mykey_id("123456789012") is None
    assert store.verify_audit() == (0, None)


@pytest.mark.parametrize(
    "change",
    [
        {"details": '{"serial":"9999"}'},
        {"outcome": "refused:certificate_revoked"},
        {"action": "revoke"},
        {"record_id": 42},
        {"at": NOW + timedelta(seconds=1)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_altered_record_is_named(store: SqlStore, change: dict[str, Any]) -> None:
    write_log(store)
    tamper(store, 3, **change)
    found = broken_at(store)
    assert found.seq == 3
    assert "altered" in found.reason
    assert store.verify_audit()[0] == 2


def test_rehashed_record_breaks_the_link_after_it(store: SqlStore) -> None:
    """Recomputing the altered record's own hash only moves the break to the next record."""
    write_log(store)
    records = list(store.audit_records())
    victim = records[2]
    forged = AuditEvent(victim.action, "refused:forged", victim.record_id, victim.details)
    tamper(store, 3, outcome="refused:forged", hash=chain_hash(victim.prev_hash, 3, NOW, forged))
    found = broken_at(store)
    assert found.seq == 4
    assert "link" in found.reason


def test_deleted_record_is_named_by_the_gap(store: SqlStore) -> None:
    write_log(store)
    with store.engine.begin() as connection:
        connection.execute(delete(audit_log).where(audit_log.c.seq == 3))
    found = broken_at(store)
    assert found.seq == 4
    assert "expected record 3" in found.reason
    assert "missing" in found.reason


def test_deleted_first_record_is_noticed(store: SqlStore) -> None:
    write_log(store)
    with store.engine.begin() as connection:
        connection.execute(delete(audit_log).where(audit_log.c.seq == 1))
    assert broken_at(store).seq == 2


# --- the pure chain functions ---------------------------------------------------------------

json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_value = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | json_text
events = st.builds(
    AuditEvent,
    action=json_text,
    outcome=json_text,
    record_id=st.none() | st.integers(0, 2**31),
    details=st.none() | st.dictionaries(json_text, json_value, max_size=4),
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def chain(items: list[tuple[AuditEvent, datetime]]) -> list[AuditRecord]:
    """Records as a store would write them, seq from 1."""
    records, prev = [], GENESIS
    for seq, (event, at) in enumerate(items, start=1):
        digest = chain_hash(prev, seq, at, event)
        details = dict(event.details or {})
        records.append(
            AuditRecord(
                seq, at, event.action, event.outcome, event.record_id, details, prev, digest
            )
        )
        prev = digest
    return records


@given(st.lists(st.tuples(events, moments), max_size=12))
def test_any_sequence_of_events_chains_and_verifies(
    items: list[tuple[AuditEvent, datetime]],
) -> None:
    records = chain(items)
    assert verify_chain(records) == (len(records), None)


MUTATIONS: dict[str, Callable[[AuditRecord], AuditRecord]] = {
    "seq": lambda r: dataclasses.replace(r, seq=r.seq + 100),
    "at": lambda r: dataclasses.replace(r, at=r.at + timedelta(microseconds=1)),
    "action": lambda r: dataclasses.replace(r, action=r.action + "x"),
    "outcome": lambda r: dataclasses.replace(r, outcome=r.outcome + "x"),
    "record_id": lambda r: dataclasses.replace(
        r, record_id=0 if r.record_id is None else r.record_id + 1
    ),
    # Keys drawn above are at most 12 characters, so this one is always new.
    "details": lambda r: dataclasses.replace(r, details={**r.details, "tampered-by-the-test": 1}),
    "prev_hash": lambda r: dataclasses.replace(r, prev_hash="f" * 64),
    "hash": lambda r: dataclasses.replace(r, hash="f" * 64),
}


@given(
    st.lists(st.tuples(events, moments), min_size=1, max_size=10),
    st.data(),
    st.sampled_from(sorted(MUTATIONS)),
)
def test_any_single_field_mutation_is_found_where_it_was_made(
    items: list[tuple[AuditEvent, datetime]], data: st.DataObject, field: str
) -> None:
    records = chain(items)
    index = data.draw(st.integers(0, len(records) - 1), label="index")
    mutated = MUTATIONS[field](records[index])
    records[index] = mutated
    checked, found = verify_chain(records)
    assert found is not None
    assert checked == index
    assert found.seq == mutated.seq
