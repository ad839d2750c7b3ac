"""The MyKey platform's rules (SPEC.md "The MyKey ID"), on SQLite and PostgreSQL alike.

Every test drives the service with real emulated cards through the Card API, a real J-LIS
(CA and registry) and a real store; the clock is the only thing the tests steer.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mynahil.reference_impl.mykey import MyKeyError, Purpose
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.mykey.platform import Platform


def refused(code: str) -> pytest.RaisesExc[MyKeyError]:
    return pytest.raises(MyKeyError, check=lambda e: e.code == code)


# --- issuance ----------------------------------------------------------------------------------


def test_issuance_binds_an_id_and_the_same_card_gets_it_again(platform: Platform) -> None:
    holder = platform.new_card()
    first = platform.issue(holder)
    assert first.created
    assert len(first.mykey_id) == 8
    again = platform.issue(holder)
    assert again.mykey_id == first.mykey_id
    assert not again.created


def test_chosen_ids(platform: Platform) -> None:
    alice, bob = platform.new_card(), platform.new_card()
    assert platform.issue(alice, chosen_id="abcd-efgh").mykey_id == "ABCDEFGH"
    with refused("mykey_id_taken"):
        platform.issue(bob, chosen_id="ABCDEFGH")
    with refused("mykey_id_invalid"):
        platform.issue(bob, chosen_id="ABCDEFG0")
    assert platform.issue(bob).created


def test_each_card_its_own_id(platform: Platform) -> None:
    ids = {platform.issue(platform.new_card()).mykey_id for _ in range(5)}
    assert len(ids) == 5


# --- the challenge protocol ---------------------------------------------------------------------


def test_replayed_challenge_is_refused(platform: Platform) -> None:
    holder = platform.new_card()
    challenge, certificate, signature = platform.prove(holder, Purpose.ISSUE)
    platform.service.issue(challenge.challenge_id, certificate, signature)
    with refused("challenge_used"):
        platform.service.issue(challenge.challenge_id, certificate, signature)


def test_expired_challenge_is_refused(platform: Platform) -> None:
    holder = platform.new_card()
    challenge, certificate, signature = platform.prove(holder, Purpose.ISSUE)
    platform.clock.advance(platform.service.policy.challenge_ttl + timedelta(seconds=1))
    with refused("challenge_expired"):
        platform.service.issue(challenge.challenge_id, certificate, signature)


def test_foreign_challenge_is_refused(platform: Platform) -> None:
    holder = platform.new_card()
    challenge, certificate, signature = platform.prove(holder, Purpose.LOGIN)
    with refused("challenge_foreign"):
        platform.service.issue(challenge.challenge_id, certificate, signature)


def test_unknown_challenge_and_signature_over_another_nonce(platform: Platform) -> None:
    holder = platform.new_card()
    _c, certificate, signature = platform.prove(holder, Purpose.ISSUE)
    with refused("challenge_unknown"):
        platform.service.issue("no-such-challenge", certificate, signature)
    other = platform.service.new_challenge(Purpose.ISSUE)
    with refused("signature_invalid"):
        platform.service.issue(other.challenge_id, certificate, signature)


def test_a_refused_attempt_still_consumes_the_challenge(platform: Platform) -> None:
    holder = platform.new_card()
    challenge, certificate, _sig = platform.prove(holder, Purpose.ISSUE)
    with refused("signature_invalid"):
        platform.service.issue(challenge.challenge_id, certificate, bytes(256))
    _c2, _cert2, good = platform.prove(holder, Purpose.ISSUE)
    with refused("challenge_used"):
        platform.service.issue(challenge.challenge_id, certificate, good)


# --- certificates -----------------------------------------------------------------------------


def test_a_certificate_that_is_not_der_is_refused_after_the_challenge(platform: Platform) -> None:
    """The challenge is judged first (its refusal wins), and stays spent when the certificate
    sent with it is refused."""
    holder = platform.new_card()
    challenge, certificate, signature = platform.prove(holder, Purpose.ISSUE)
    with refused("challenge_unknown"):
        platform.service.issue("no-such-challenge", b"\x30\x03not DER", signature)
    with refused("certificate_invalid"):
        platform.service.issue(challenge.challenge_id, b"\x30\x03not DER", signature)
    with refused("challenge_used"):
        platform.service.issue(challenge.challenge_id, certificate, signature)


def test_certificate_from_another_ca_is_untrusted(platform: Platform) -> None:
    stranger = platform.foreign_card()
    with refused("certificate_untrusted"):
        platform.issue(stranger)


def test_expired_certificate_cannot_issue_or_log_in(platform: Platform) -> None:
    holder = platform.new_card()
    platform.issue(holder)
    platform.clock.advance(timedelta(days=366 * 6))
    with refused("certificate_expired"):
        platform.login_card(holder)
    with refused("certificate_expired"):
        platform.issue(holder)


def test_suspended_card_cannot_log_in(platform: Platform) -> None:
    holder = platform.new_card()
    platform.issue(holder)
    platform.suspend(holder)
    with refused("certificate_revoked"):
        platform.login_card(holder)


def test_renewed_certificate_and_reissued_card_keep_the_id(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.renew(holder)
    assert platform.login_card(holder).mykey_id == mykey_id
    platform.reissue(holder)
    assert platform.issue(holder).mykey_id == mykey_id
    assert platform.login_card(holder).mykey_id == mykey_id


# --- logins, passwords, ID changes, revocation -------------------------------------------------


def test_password_login_needs_a_password_set_after_a_card_login(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    with refused("login_failed"):
        platform.service.login_with_password(mykey_id, "secret123")
    card_session = platform.login_card(holder)
    platform.service.set_password(card_session.token, "secret123")
    session = platform.service.login_with_password(mykey_id.lower(), "secret123")
    assert session.mykey_id == mykey_id
    with refused("card_login_required"):
        platform.service.set_password(session.token, "other12345")
    with refused("card_login_required"):
        platform.service.show_mykey_id(session.token)
    assert platform.service.show_mykey_id(card_session.token) == mykey_id


def test_password_policy(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    token = platform.login_card(holder).token
    for bad in ("short1", "lettersonly", "12345678901", f"x1{mykey_id}"):
        with refused("password_invalid"):
            platform.service.set_password(token, bad)


def test_password_login_is_rate_limited(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    for _ in range(platform.service.policy.password_failures_before_lock):
        with refused("login_failed"):
            platform.service.login_with_password(mykey_id, "wrong-guess1")
    with refused("login_failed"):  # locked: even the right password answers like a wrong one
        platform.service.login_with_password(mykey_id, "secret123")
    platform.clock.advance(platform.service.policy.first_lock + timedelta(seconds=1))
    assert platform.service.login_with_password(mykey_id, "secret123").mykey_id == mykey_id


def test_unknown_id_and_wrong_password_look_the_same(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    with refused("login_failed") as wrong:
        platform.service.login_with_password(mykey_id, "nope12345")
    with refused("login_failed") as unknown:
        platform.service.login_with_password("ZZZZZZZZ", "nope12345")
    assert str(wrong.value) == str(unknown.value)


def test_changing_the_id_retires_the_old_one_for_good(platform: Platform) -> None:
    holder, other = platform.new_card(), platform.new_card()
    old = platform.issue(holder).mykey_id
    platform.service.set_password(platform.login_card(holder).token, "secret123")
    session = platform.service.login_with_password(old, "secret123")
    new = platform.service.change_mykey_id(session.token)
    assert new != old
    with refused("login_failed"):
        platform.service.login_with_password(old, "secret123")
    assert platform.service.login_with_password(new, "secret123").mykey_id == new
    with refused("session_invalid"):
        platform.service.show_mykey_id(session.token)  # sessions end with the old ID
    with refused("mykey_id_taken"):
        platform.issue(other, chosen_id=old)
    assert platform.login_card(holder).mykey_id == new


def test_revocation_is_irreversible_and_a_new_id_can_follow(platform: Platform) -> None:
    holder = platform.new_card()
    old = platform.issue(holder).mykey_id
    token = platform.login_card(holder).token
    platform.service.set_password(token, "secret123")
    platform.service.revoke(token)
    with refused("session_invalid"):  # revocation ends every session at once
        platform.service.show_mykey_id(token)
    with refused("login_failed"):
        platform.service.login_with_password(old, "secret123")
    with refused("mykey_not_found"):
        platform.login_card(holder)
    fresh = platform.issue(holder)
    assert fresh.created
    assert fresh.mykey_id != old


# --- audit and secrecy -------------------------------------------------------------------------


def test_every_operation_is_audited_in_an_intact_chain(platform: Platform) -> None:
    holder = platform.new_card()
    platform.issue(holder)
    with refused("challenge_unknown"):
        platform.service.issue("nope", b"", b"")
    token = platform.login_card(holder).token
    platform.service.show_mykey_id(token)
    assert isinstance(platform.store, SqlStore)
    records = list(platform.store.audit_records())
    assert [(r.action, r.outcome) for r in records] == [
        ("issue", "ok"),
        ("issue", "refused:challenge_unknown"),
        ("login_card", "ok"),
        ("show_id", "ok"),
    ]
    count, problem = platform.store.verify_audit()
    assert count == 4
    assert problem is None


def test_no_pin_password_or_my_number_is_stored(platform: Platform) -> None:
    holder = platform.new_card()
    mykey_id = platform.issue(holder).mykey_id
    token = platform.login_card(holder).token
    platform.service.set_password(token, "Sekret-pass-42")
    dump = platform.dump_database()
    assert mykey_id in dump
    for secret in ("Sekret-pass-42", holder.state.holder.my_number, token):
        assert secret not in dump
