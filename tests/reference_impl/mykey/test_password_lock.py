"""The password lock under attack (issue #12 items 2, 3, 8), on SQLite and PostgreSQL.

Racing guesses never read a stale failure count; the doubling schedule has a ceiling; a locked
ID cannot be told from an unknown one; the holder's card still gets in and resets the lock;
a proof refused because two issuances raced stays spent.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.mykey import MyKeyError, MyKeyStatus, Policy, Purpose
from mynahil.reference_impl.mykey.passwords import hash_password
from mynahil.reference_impl.mykey.service import password_lock
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.tables import mykeys
from tests.reference_impl.mykey.platform import Platform

GUESSERS = 50


def refused(code: str) -> pytest.RaisesExc[MyKeyError]:
    return pytest.raises(MyKeyError, check=lambda e: e.code == code)


def holder_with_password(platform: Platform) -> str:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    return mykey_id


def test_fifty_racing_guesses_check_at_most_the_allowed_number(platform: Platform) -> None:
    """Issue #12 item 2: 50 guesses at once, from 50 threads; at most 5 reach scrypt."""
    mykey_id = holder_with_password(platform)
    allowed = platform.service.policy.password_failures_before_lock
    start = threading.Barrier(GUESSERS)
    checked: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def guess() -> None:
        try:
            start.wait()
            attempt = platform.service.claim_password_attempt(mykey_id)
            with lock:
                checked.append(attempt.state)
            with refused("login_failed"):
                platform.service.finish_password_attempt(attempt, matched=False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess) for _ in range(GUESSERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert checked.count("checked") == allowed
    assert checked.count("locked") == GUESSERS - allowed
    with platform.store.transaction() as uow:
        record = uow.record_by_mykey_id(mykey_id)
    assert record is not None
    assert record.password_failures == allowed
    assert record.locked_until is not None


def test_fifty_racing_wrong_passwords_lock_the_id(platform: Platform) -> None:
    """The same through login_with_password (scrypt and all): the right one is refused after."""
    mykey_id = holder_with_password(platform)
    start = threading.Barrier(GUESSERS)
    outcomes: list[str] = []

    def guess() -> None:
        start.wait()
        try:
            platform.service.login_with_password(mykey_id, "wrong-guess1")
            outcomes.append("in")
        except MyKeyError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=guess) for _ in range(GUESSERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert outcomes == ["login_failed"] * GUESSERS
    with refused("login_failed"):
        platform.service.login_with_password(mykey_id, "secret123")
    records = [r for r in platform.store.audit_records() if r.action == "login_password"]
    locked = [r for r in records if r.details.get("locked")]
    assert len(records) == GUESSERS + 1
    assert len(locked) == GUESSERS + 1 - platform.service.policy.password_failures_before_lock


def test_the_doubling_lock_has_a_ceiling() -> None:
    """Issue #12 item 3: 15 min doubling up to 24 h, and there it stays, at any count."""
    policy = Policy()
    assert password_lock(policy, 4) is None
    assert password_lock(policy, 5) == timedelta(minutes=15)
    assert password_lock(policy, 6) == timedelta(minutes=30)
    assert password_lock(policy, 11) == timedelta(hours=16)
    assert password_lock(policy, 12) == policy.longest_lock
    for failures in (13, 40, 1_000, 10**9, 2**63):
        assert password_lock(policy, failures) == policy.longest_lock


def test_a_month_of_guesses_at_the_edge_still_locks_and_counts(platform: Platform) -> None:
    """Issue #12 item 3: after 31+ days of one guess per lapse, guesses still count and lock
    (the schedule used to overflow: every request then failed and nothing was counted)."""
    mykey_id = holder_with_password(platform)
    with platform.store.transaction() as uow:
        record = uow.record_by_mykey_id(mykey_id)
        assert record is not None
        uow.update_record(replace(record, password_failures=10**6))
    for _ in range(3):
        with refused("login_failed"):
            platform.service.login_with_password(mykey_id, "wrong-guess1")
        with platform.store.transaction() as uow:
            record = uow.record_by_mykey_id(mykey_id)
        assert record is not None
        assert record.locked_until == platform.clock.now + platform.service.policy.longest_lock
        platform.clock.advance(platform.service.policy.longest_lock + timedelta(seconds=1))
    assert record.password_failures == 10**6 + 3
    assert platform.service.login_with_password(mykey_id, "secret123").mykey_id == mykey_id


def test_a_locked_id_answers_like_an_unknown_one(platform: Platform) -> None:
    """Issue #12 item 8: the sixth wrong password does not tell whether the ID exists."""
    mykey_id = holder_with_password(platform)
    answers = []
    for candidate in (mykey_id, "ZZZZ-ZZZZ"):
        for _ in range(platform.service.policy.password_failures_before_lock + 1):
            with refused("login_failed") as failure:
                platform.service.login_with_password(candidate, "wrong-guess1")
        answers.append((failure.value.code, str(failure.value)))
    assert answers[0] == answers[1]


def test_a_locked_holder_still_gets_in_with_the_card_and_resets(platform: Platform) -> None:
    """Issue #12 item 8: anyone can lock password login, nobody can lock the holder out."""
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    for _ in range(platform.service.policy.password_failures_before_lock + 3):
        with refused("login_failed"):
            platform.service.login_with_password(mykey_id, "attacker-guess1")
    session = platform.login_card(holder)  # the card always works
    platform.service.set_password(session.token, "newsecret456")  # and clears the lock
    assert platform.service.login_with_password(mykey_id, "newsecret456").mykey_id == mykey_id


def test_a_password_changed_while_being_checked_does_not_log_in(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    attempt = platform.service.claim_password_attempt(mykey_id)
    platform.service.set_password(platform.login_card(holder).token, "other12345")
    with refused("login_failed"):
        platform.service.finish_password_attempt(attempt, matched=True)


def test_a_proof_refused_because_issuances_raced_stays_spent(platform: Platform) -> None:
    """Issue #12 item 8: the binding clash undoes the new record, never the spent challenge."""
    holder = platform.new_card()
    assert holder.state.auth is not None
    serial = x509.load_der_x509_certificate(holder.state.auth.certificate).serial_number
    # Another request's binding, not yet visible as an active record: the clash of a race.
    with platform.store.transaction() as uow:
        other = uow.create_record("RACE-WINR", platform.clock.now)
        uow.bind_serial(other.record_id, serial, platform.clock.now)
        uow._conn.execute(  # type: ignore[attr-defined]
            update(mykeys)
            .where(mykeys.c.record_id == other.record_id)
            .values(status=MyKeyStatus.REVOKED.value)
        )
    challenge, certificate, signature = platform.prove(holder, Purpose.ISSUE)
    with refused("issuance_raced"):
        platform.service.issue(challenge.challenge_id, certificate, signature)
    with refused("challenge_used"):
        platform.service.issue(challenge.challenge_id, certificate, signature)
    last = [r for r in platform.store.audit_records() if r.action == "issue"]
    assert [r.outcome for r in last[-2:]] == ["refused:issuance_raced", "refused:challenge_used"]
    with platform.store.transaction() as uow:  # the losing record was undone
        assert uow.mykey_id_used("RACE-WINR")
        assert uow.record_by_serial(serial) is None
        records = select(func.count()).select_from(mykeys)
        assert uow._conn.execute(records).scalar_one() == 1  # type: ignore[attr-defined]


def test_setting_a_password_hashes_outside_the_write_lock(
    tmp_path: Path, jlis_ca: JlisCA, key_pool: KeyPool
) -> None:
    """Issue #12 item 5: scrypt never runs while the store's write lock is held. The hasher
    is the real one; around it, another connection takes SQLite's write lock at once."""
    database = tmp_path / "p.db"
    store = SqlStore.open(f"sqlite:///{database}")
    lock_was_free: list[bool] = []

    def probing_hash(password: str) -> str:
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            lock_was_free.append(True)
        except sqlite3.OperationalError:
            lock_was_free.append(False)
        finally:
            other.close()
        return hash_password(password)

    try:
        platform = Platform(store, jlis_ca, key_pool)
        platform.service.hash_password = probing_hash
        holder = platform.new_card()
        mykey_id = platform.issue(holder).mykey_id
        platform.service.set_password(platform.login_card(holder).token, "secret123")
        assert lock_was_free == [True]
        assert platform.service.login_with_password(mykey_id, "secret123").mykey_id == mykey_id
    finally:
        store.dispose()
