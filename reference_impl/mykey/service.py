"""The MyKey platform's rules (SPEC.md, "The MyKey ID"), free of HTTP and SQL.

Every operation runs in one store transaction and writes one audit record in it, refusals
included: a refused attempt still consumes its challenge and is still logged, and only then
is the refusal raised.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.reference_impl.audit import AuditEvent, RefusalBudget, bounded
from mynahil.reference_impl.audited import audited_operation

from .errors import MyKeyError
from .ids import InvalidMyKeyId, generate_mykey_id, parse_mykey_id
from .model import Challenge, LoginMethod, MyKeyRecord, MyKeyStatus, Purpose, Session
from .passwords import check_password_policy, hash_password, password_matches
from .ports import (
    CertificateAuthority,
    CertificateStatus,
    Conflict,
    HolderFacts,
    MyKeyIdUnavailable,
    SerialBound,
    Store,
    UnitOfWork,
)

__all__ = [
    "LOGIN_FAILED",
    "CardHolder",
    "IssueResult",
    "LoginResult",
    "MyKeyService",
    "PasswordAttempt",
    "Policy",
    "password_lock",
    "stopped_error",
]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    """The platform's tunables; defaults are this reference implementation's choices."""

    challenge_ttl: timedelta = timedelta(minutes=2)
    session_ttl: timedelta = timedelta(minutes=30)
    password_failures_before_lock: int = 5
    first_lock: timedelta = timedelta(minutes=15)
    longest_lock: timedelta = timedelta(hours=24)
    linkage_depth: int = 16  # renewals/reissues followed back through J-LIS


LOGIN_FAILED = (
    "wrong MyKey ID or password (after repeated failures password login pauses for a "
    "while: log in with your card, which also lets you set a new password)"
)


def password_lock(policy: Policy, failures: int) -> timedelta | None:
    """How long password login locks after ``failures`` consecutive failures (None: no lock).

    The ``password_failures_before_lock``-th failure locks for ``first_lock``; each failure
    after a lock lapses doubles it, up to ``longest_lock``, where it stays however many
    more follow (the doubling is capped before it is computed, so it never overflows).
    """
    over = failures - policy.password_failures_before_lock
    if over < 0:
        return None
    doublings = 0
    lock = policy.first_lock
    while doublings < over and lock < policy.longest_lock:
        lock *= 2
        doublings += 1
    return min(lock, policy.longest_lock)


@dataclass(frozen=True, slots=True)
class PasswordAttempt:
    """A password login between its claim and its check (see ``login_with_password``)."""

    record_id: int | None
    password_hash: str | None  # None: there is nothing to check (the dummy hash is used)
    mykey_id: str | None
    at: datetime
    state: str  # "checked" (counted, to check), "locked" or "unknown"


@dataclass(frozen=True, slots=True)
class IssueResult:
    mykey_id: str
    created: bool  # False: the certificate already had one (returned as it is)


@dataclass(frozen=True, slots=True)
class CardHolder:
    """Who proved possession of a card: their record, the certificate they used, and what
    J-LIS says about its holder.

    ``facts`` are J-LIS's for this certificate (the person, this card's application date).
    ``first_card_applied_on`` is the earliest card-application date along J-LIS's old→new
    linkage: the day the person applied for the card this one renews or reissues (a holder
    who lost a card applied for in 2020 still "applied for a card" in 2020).
    """

    record: MyKeyRecord
    serial: int
    certificate_issued_at: datetime
    facts: HolderFacts
    first_card_applied_on: date


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str  # give to the client once; only its hash is stored
    mykey_id: str
    method: LoginMethod
    expires_at: datetime


def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def stopped_error() -> MyKeyError:
    """What a holder is told while the help desk has stopped their MyKey ID."""
    return MyKeyError(
        "mykey_id_stopped",
        "the help desk stopped this MyKey ID (it may have leaked): no login and no points "
        "until it is restarted; contact the MyKey platform help desk",
    )


def _live(record: MyKeyRecord) -> MyKeyRecord:
    """The record, unless the help desk stopped it."""
    if record.status is MyKeyStatus.STOPPED:
        raise stopped_error()
    return record


def _nonce(challenge: Challenge | None, purpose: Purpose, now: datetime) -> bytes:
    """The nonce of a challenge just taken for ``purpose``, or the refusal that it is not one."""
    if challenge is None:
        raise MyKeyError("challenge_unknown", "unknown challenge: ask for a new one")
    if challenge.used_at is not None:
        raise MyKeyError("challenge_used", "this challenge was used already: ask for a new one")
    if challenge.purpose is not purpose:
        raise MyKeyError(
            "challenge_foreign",
            f"this challenge was issued for {challenge.purpose.value}, not {purpose.value}",
        )
    if now >= challenge.expires_at:
        raise MyKeyError(
            "challenge_expired", "the challenge expired: ask for a new one and sign promptly"
        )
    return challenge.nonce


def _token_hash(token: str) -> str:
    # UTF-8 with surrogates passed: any string hashes (and then matches no session); the
    # platform's own tokens are ASCII, so their hashes are what they always were.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class MyKeyService:
    def __init__(
        self,
        store: Store,
        jlis: CertificateAuthority,
        *,
        clock: Clock = utc_now,
        policy: Policy | None = None,
        hash_password: Callable[[str], str] = hash_password,
        anonymous_refusals: RefusalBudget | None = None,
    ) -> None:
        self.store = store
        self.jlis = jlis
        self.clock = clock
        self.policy = policy or Policy()
        self.hash_password = hash_password  # scrypt; never called inside a transaction
        # What refused password logins may add to the audit log, per source (see audit.py).
        self.anonymous_refusals = anonymous_refusals or RefusalBudget()
        self._anchor = x509.load_der_x509_certificate(jlis.auth_ca_certificate)
        self._ids = secrets.SystemRandom()

    # --- plumbing --------------------------------------------------------------------------

    def _operation(
        self, action: str
    ) -> AbstractContextManager[tuple[UnitOfWork, datetime, dict[str, Any]]]:
        """The audited transaction every operation runs in (see ``reference_impl/audited.py``)."""
        return audited_operation(self.store, action, self.clock())

    # --- challenges ------------------------------------------------------------------------

    def new_challenge(self, purpose: Purpose) -> Challenge:
        now = self.clock()
        challenge = Challenge(
            challenge_id=secrets.token_urlsafe(18),
            nonce=secrets.token_bytes(32),
            purpose=purpose,
            created_at=now,
            expires_at=now + self.policy.challenge_ttl,
        )
        with self.store.transaction() as uow:
            uow.add_challenge(challenge)
        return challenge

    def _proven_card(
        self,
        uow: UnitOfWork,
        challenge_id: str,
        purpose: Purpose,
        certificate_der: bytes,
        signature: bytes,
        now: datetime,
    ) -> tuple[x509.Certificate, MyKeyRecord | None]:
        """A card's answer to a challenge: the challenge taken, the certificate verified, and
        the record it is bound to (or, through J-LIS's linkage, its predecessor's), if any.

        The binding is looked up with the challenge (one round trip on PostgreSQL), by the
        serial of the certificate as sent, and J-LIS's status of that serial asked in the same
        round trip where J-LIS keeps its registry in the platform's database; both are used
        only once the certificate is verified. A challenge's refusal still comes before the
        certificate's.
        """
        try:
            parsed = x509.load_der_x509_certificate(certificate_der)
        except ValueError:
            _nonce(uow.consume_challenge(challenge_id, now), purpose, now)
            raise MyKeyError("certificate_invalid", "that is not a DER X.509 certificate") from None
        serial = int(parsed.serial_number)
        self.jlis.prefetch_status(serial)
        challenge, bound = uow.consume_challenge_and_look_up(challenge_id, now, serial)
        nonce = _nonce(challenge, purpose, now)
        cert = self._verified_certificate(parsed, nonce, signature, now)
        return cert, self._record_for_serial(uow, cert, now, bound)

    # --- certificates ----------------------------------------------------------------------

    def _verified_certificate(
        self, cert: x509.Certificate, nonce: bytes, signature: bytes, now: datetime
    ) -> x509.Certificate:
        """Chain, validity, revocation and possession: the certificate if all hold."""
        try:
            cert.verify_directly_issued_by(self._anchor)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            # UnsupportedAlgorithm: a certificate that names the J-LIS issuer but is signed
            # with something J-LIS never uses (RSASSA-PSS over an unknown hash, …).
            raise MyKeyError(
                "certificate_untrusted",
                "the certificate was not issued by the J-LIS user-authentication CA",
            ) from None
        if now < cert.not_valid_before_utc:
            raise MyKeyError("certificate_not_yet_valid", "the certificate is not valid yet")
        if now > cert.not_valid_after_utc:
            raise MyKeyError(
                "certificate_expired",
                "the card's certificate has expired: renew it at a municipal window "
                "(free); your MyKey ID and points stay",
            )
        status = self.jlis.status(cert.serial_number)
        if status is CertificateStatus.REVOKED:
            raise MyKeyError(
                "certificate_revoked",
                "the card's certificate is revoked (card reported lost or suspended)",
            )
        if status is CertificateStatus.UNKNOWN:
            raise MyKeyError("certificate_unknown", "J-LIS does not know this certificate")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise MyKeyError("certificate_invalid", "the certificate does not carry an RSA key")
        try:
            key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise MyKeyError(
                "signature_invalid", "the card's signature does not match the challenge"
            ) from None
        return cert

    def _record_for_serial(
        self, uow: UnitOfWork, cert: x509.Certificate, now: datetime, found: MyKeyRecord | None
    ) -> MyKeyRecord | None:
        """The active record for this certificate, following J-LIS's old→new linkage.

        A renewed certificate or a reissued card's certificate is bound, on first sight, to
        the record its predecessor was bound to (SPEC: the MyKey ID stays, points carry over).
        The binding keeps the certificate's validity: the point rules ask whether the holder
        had a valid certificate when a charge was made.
        """
        serial = int(cert.serial_number)
        if found is not None:  # the record bound to this serial (looked up with the challenge)
            return found
        ancestor: int | None = serial
        for _ in range(self.policy.linkage_depth):
            ancestor = self.jlis.predecessor(ancestor) if ancestor is not None else None
            if ancestor is None:
                return None
            record = uow.record_by_serial(ancestor)
            if record is not None:
                try:
                    uow.bind_serial(record.record_id, serial, now, valid=_validity(cert))
                except Conflict:
                    return uow.record_by_serial(serial)
                uow.audit(
                    AuditEvent(
                        "certificate_linked",
                        "ok",
                        record.record_id,
                        {"serial": str(serial), "from": str(ancestor)},
                    ),
                    now,
                )
                return record
        # Not linked, but perhaps the same person's: their ID (never a second one) takes it.
        person_id = self._person_of(uow, serial, now)
        record = uow.person_record(person_id)
        if record is None:
            return None
        try:
            uow.bind_serial(record.record_id, serial, now, valid=_validity(cert))
        except Conflict:
            return uow.record_by_serial(serial)
        uow.audit(
            AuditEvent("certificate_linked", "ok", record.record_id, {"serial": str(serial),
                                                                      "from": "person"}),
            now,
        )  # fmt: skip
        return record

    def _person_of(self, uow: UnitOfWork, serial: int, now: datetime) -> int:
        """The platform's person for this certificate (see :meth:`_person_ref`)."""
        return uow.person(self._person_ref(serial), now)

    def _person_ref(self, serial: int) -> str:
        """J-LIS's opaque person reference for this certificate's holder (the same across
        renewals, reissued cards and revoked MyKey IDs; never the My Number)."""
        facts = self.jlis.holder_facts(serial)
        if facts is None:
            raise MyKeyError("certificate_unknown", "J-LIS does not know this certificate")
        return facts.person_ref

    # --- issuance --------------------------------------------------------------------------

    def issue(
        self,
        challenge_id: str,
        certificate_der: bytes,
        signature: bytes,
        *,
        chosen_id: str | None = None,
    ) -> IssueResult:
        """Bind a MyKey ID to the card's certificate; the same card gets its existing ID back."""
        with self._operation("issue") as (uow, now, note):
            cert, existing = self._proven_card(
                uow, challenge_id, Purpose.ISSUE, certificate_der, signature, now
            )
            serial = int(cert.serial_number)
            note["details"]["serial"] = str(serial)
            if existing is not None:
                note["record_id"] = existing.record_id
                _live(existing)
                note["details"]["existing"] = True
                return IssueResult(existing.mykey_id, created=False)
            wanted = self._valid_choice(chosen_id) if chosen_id is not None else None
            if wanted is not None and uow.mykey_id_used(wanted):
                raise MyKeyError("mykey_id_taken", f"{wanted} is taken; choose another")
            person_ref = self._person_ref(serial)
            try:
                record = self._create(
                    wanted,
                    partial(
                        uow.create_bound_record,
                        now=now,
                        person_ref=person_ref,
                        serial=serial,
                        valid=_validity(cert),
                    ),
                )
            except SerialBound:
                # Another request bound this certificate first (that one stands): the store
                # made no record. The challenge stays spent, so the proof cannot be sent
                # again, and the refusal is audited like any other. (The binding's insert
                # skips a clash instead of failing, so no SAVEPOINT is needed to go on.)
                raise MyKeyError(
                    "issuance_raced",
                    "this card was issued an ID at the same moment; ask again (with a new "
                    "challenge) to get it",
                ) from None
            note["record_id"] = record.record_id
            return IssueResult(record.mykey_id, created=True)

    def _valid_choice(self, chosen: str) -> str:
        try:
            return parse_mykey_id(chosen)
        except InvalidMyKeyId as exc:
            raise MyKeyError("mykey_id_invalid", str(exc)) from None

    def _create(self, wanted: str | None, create: Callable[[str], MyKeyRecord]) -> MyKeyRecord:
        """``create(mykey_id)`` with the ID the holder chose, or a random one not used before."""
        if wanted is not None:
            try:
                return create(wanted)
            except MyKeyIdUnavailable:
                raise MyKeyError("mykey_id_taken", f"{wanted} is taken; choose another") from None
        for _ in range(8):
            try:
                # The store refuses current and retired IDs alike: no look-up first.
                return create(generate_mykey_id(self._ids))
            except MyKeyIdUnavailable:
                continue  # a rare repeat (39 bits of randomness): draw again
        raise MyKeyError("mykey_id_exhausted", "could not find a free MyKey ID; try again")

    def _unused_id(self, uow: UnitOfWork) -> str:
        """A random ID never used before (39 bits: a repeat is rare, but possible)."""
        for _ in range(8):
            candidate = generate_mykey_id(self._ids)
            if not uow.mykey_id_used(candidate):
                return candidate
        raise MyKeyError("mykey_id_exhausted", "could not find a free MyKey ID; try again")

    # --- login -----------------------------------------------------------------------------

    def _session(
        self, uow: UnitOfWork, record: MyKeyRecord, method: LoginMethod, now: datetime
    ) -> LoginResult:
        token = secrets.token_urlsafe(32)
        expires = now + self.policy.session_ttl
        uow.add_session(Session(_token_hash(token), record.record_id, method, now, expires))
        return LoginResult(token, record.mykey_id, method, expires)

    def login_with_card(
        self, challenge_id: str, certificate_der: bytes, signature: bytes
    ) -> LoginResult:
        with self._operation("login_card") as (uow, now, note):
            cert, record = self._proven_card(
                uow, challenge_id, Purpose.LOGIN, certificate_der, signature, now
            )
            note["details"]["serial"] = str(cert.serial_number)
            if record is None:
                raise MyKeyError(
                    "mykey_not_found", "this card has no MyKey ID yet: issue one first"
                )
            note["record_id"] = record.record_id
            return self._session(uow, _live(record), LoginMethod.CARD, now)

    def card_holder(
        self,
        uow: UnitOfWork,
        challenge_id: str,
        certificate_der: bytes,
        signature: bytes,
        now: datetime,
    ) -> CardHolder:
        """A card login inside someone else's operation (the point system's application)."""
        cert, record = self._proven_card(
            uow, challenge_id, Purpose.LOGIN, certificate_der, signature, now
        )
        serial = int(cert.serial_number)
        if record is None:
            raise MyKeyError("mykey_not_found", "this card has no MyKey ID yet: issue one first")
        _live(record)
        facts = self.jlis.holder_facts(serial)
        if facts is None:
            raise MyKeyError("certificate_unknown", "J-LIS does not know this certificate")
        return CardHolder(
            record, serial, cert.not_valid_before_utc, facts, self._first_applied_on(serial, facts)
        )

    def _first_applied_on(self, serial: int, facts: HolderFacts) -> date:
        """The earliest card-application date of the person's cards along J-LIS's linkage."""
        earliest = facts.card_applied_on
        ancestor: int | None = serial
        for _ in range(self.policy.linkage_depth):
            ancestor = self.jlis.predecessor(ancestor) if ancestor is not None else None
            if ancestor is None:
                break
            older = self.jlis.holder_facts(ancestor)
            if older is not None and older.person_ref == facts.person_ref:
                earliest = min(earliest, older.card_applied_on)
        return earliest

    def logged_in(self, uow: UnitOfWork, token: str, now: datetime) -> MyKeyRecord:
        """The active record behind a session token, inside someone else's operation."""
        return self._logged_in(uow, token, now, card=False)

    def login_with_password(self, mykey_id: str, password: str) -> LoginResult:
        """The second way in: MyKey ID + page password, rate limited per ID.

        Three steps, so that the expensive scrypt check never runs inside a write transaction
        and racing guesses never read a stale failure count:

        1. :meth:`claim_password_attempt`: a short transaction locks the record's row and
           counts the attempt as a failure *before* the password is checked (the count that
           reaches the limit also sets the lock), so however many guesses race, at most
           :attr:`Policy.password_failures_before_lock` are checked before the lock.
        2. :func:`password_matches` (scrypt), outside any transaction.
        3. :meth:`finish_password_attempt`: a short audited transaction; a right password
           re-checks the record (still active, same password) and clears the count.

        Every refusal is the same ``login_failed`` with the same message: an unknown ID, a
        wrong password and a locked ID cannot be told apart (a locked ID answers like a
        wrong password, with the same scrypt work). A lock stops password login only:
        the holder's card login still works and setting the password clears the lock.
        """
        attempt = self.claim_password_attempt(mykey_id)
        return self.finish_password_attempt(attempt, self.check_password(attempt, password))

    @staticmethod
    def check_password(attempt: PasswordAttempt, password: str) -> bool:
        """Step 2 of :meth:`login_with_password`: the scrypt work, the same for every attempt
        (an unknown or locked ID is checked against a dummy hash and never matches)."""
        return password_matches(attempt.password_hash, password) and attempt.state == "checked"

    def claim_password_attempt(self, mykey_id: str) -> PasswordAttempt:
        """Step 1 of :meth:`login_with_password`: a short transaction, no scrypt."""
        try:
            canonical: str | None = parse_mykey_id(mykey_id)
        except InvalidMyKeyId:
            canonical = None
        if canonical is None:
            return PasswordAttempt(None, None, None, self.clock(), "unknown")
        with self.store.transaction() as uow:
            now = self.clock()
            record = uow.record_by_mykey_id(canonical, lock=True)
            if (
                record is None
                or record.status is MyKeyStatus.REVOKED
                or record.password_hash is None
            ):
                return PasswordAttempt(None, None, None, now, "unknown")
            if record.locked_until is not None and now < record.locked_until:
                return PasswordAttempt(record.record_id, None, None, now, "locked")
            uow.update_record(self._failed(record, now))
        return PasswordAttempt(record.record_id, record.password_hash, canonical, now, "checked")

    def finish_password_attempt(
        self, attempt: PasswordAttempt, matched: bool, *, source: str | None = None
    ) -> LoginResult:
        """Step 3 of :meth:`login_with_password`: audited; a session only for a match.

        A refusal is a refusal of an unauthenticated request: with the caller's ``source``
        (its address, from the HTTP layer) it passes :attr:`anonymous_refusals` first, so a
        flood of guesses writes a bounded number of audit records (the rest are counted, and
        the count rides on the next record). Without a source, every refusal is recorded.
        """
        refused = attempt.state != "checked" or not matched
        unrecorded = 0
        if refused and source is not None:
            admitted = self.anonymous_refusals.admit(source, utc_now())
            if admitted is None:
                raise MyKeyError("login_failed", LOGIN_FAILED)
            unrecorded = admitted
        with self._operation("login_password") as (uow, now, note):
            note["record_id"] = attempt.record_id
            if refused:
                if attempt.state == "locked":
                    note["details"]["locked"] = True
                if source is not None:
                    note["details"]["source"] = bounded(source, 64)
                    note["details"]["unrecorded_before"] = unrecorded
                raise MyKeyError("login_failed", LOGIN_FAILED)
            assert attempt.record_id is not None
            record = uow.record(attempt.record_id, lock=True)
            if (
                record is None
                or record.status is MyKeyStatus.REVOKED
                or record.password_hash != attempt.password_hash
                or record.mykey_id != attempt.mykey_id
            ):
                # changed while the password was checked: the check no longer stands
                raise MyKeyError("login_failed", LOGIN_FAILED)
            uow.update_record(replace(record, password_failures=0, locked_until=None))
            _live(record)  # told why only once the password proved it is theirs
            return self._session(uow, record, LoginMethod.PASSWORD, now)

    def _failed(self, record: MyKeyRecord, now: datetime) -> MyKeyRecord:
        failures = record.password_failures + 1
        lock = password_lock(self.policy, failures)
        if lock is None:
            return replace(record, password_failures=failures)
        return replace(record, password_failures=failures, locked_until=now + lock)

    def _logged_in(self, uow: UnitOfWork, token: str, now: datetime, *, card: bool) -> MyKeyRecord:
        session = uow.session(_token_hash(token))
        if session is None or now >= session.expires_at:
            raise MyKeyError(
                "session_invalid", "not logged in (or the session expired): log in again"
            )
        if card and session.method is not LoginMethod.CARD:
            raise MyKeyError("card_login_required", "this needs a login with the card")
        # Lock the record, then look at the session again: an ID change or revocation that
        # committed meanwhile ended it, and this operation must not run on the old state.
        record = uow.record(session.record_id, lock=True)
        if uow.session(session.token_hash) is None:
            raise MyKeyError("session_invalid", "the session ended (ID changed or revoked)")
        if record is None or record.status is MyKeyStatus.REVOKED:
            raise MyKeyError("mykey_revoked", "this MyKey ID was revoked")
        return _live(record)

    # --- what a logged-in holder can do -----------------------------------------------------

    def set_password(self, token: str, new_password: str) -> None:
        """Set or reset the page password; needs a card login (a forgotten one is reset so).

        The scrypt hash is made before the write transaction opens (it holds no lock while
        it works); the policy, which needs the holder's ID, is checked inside.
        """
        hashed = self.hash_password(new_password)
        with self._operation("set_password") as (uow, now, note):
            record = self._logged_in(uow, token, now, card=True)
            note["record_id"] = record.record_id
            problem = check_password_policy(new_password, record.mykey_id)
            if problem:
                raise MyKeyError("password_invalid", problem)
            uow.update_record(
                replace(record, password_hash=hashed, password_failures=0, locked_until=None)
            )

    def show_mykey_id(self, token: str) -> str:
        """A forgotten MyKey ID, shown after a card login."""
        with self._operation("show_id") as (uow, now, note):
            record = self._logged_in(uow, token, now, card=True)
            note["record_id"] = record.record_id
            return record.mykey_id

    def change_mykey_id(self, token: str, chosen_id: str | None = None) -> str:
        """A new ID at once; the old one stops working and is never handed out again."""
        with self._operation("change_id") as (uow, now, note):
            record = self._logged_in(uow, token, now, card=False)
            note["record_id"] = record.record_id
            new_id = self._valid_choice(chosen_id) if chosen_id else self._unused_id(uow)
            if uow.mykey_id_used(new_id):
                raise MyKeyError("mykey_id_taken", f"{new_id} is taken; choose another")
            try:
                uow.change_mykey_id(record.record_id, new_id, now)
            except Conflict:
                raise MyKeyError("mykey_id_taken", f"{new_id} is taken; choose another") from None
            uow.end_sessions(record.record_id)
            return new_id

    def revoke(self, token: str) -> None:
        """Irreversible: the ID can never log in or hold points; the card may issue a new one."""
        with self._operation("revoke") as (uow, now, note):
            record = self._logged_in(uow, token, now, card=True)
            note["record_id"] = record.record_id
            note["details"]["serials"] = [str(s) for s in uow.unbind_serials(record.record_id)]
            uow.update_record(
                replace(record, status=MyKeyStatus.REVOKED, revoked_at=now, password_hash=None)
            )
            uow.end_sessions(record.record_id)
