"""What the MyKey service needs from the outside world, as small interfaces.

The service holds business rules only; a :class:`Store` (SQLite or PostgreSQL) and a
:class:`CertificateAuthority` (the emulated J-LIS, in-process or over HTTP) are given to it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from mynahil.reference_impl.audit import AuditEvent

from .model import Challenge, MyKeyRecord, Session

__all__ = [
    "CertificateAuthority",
    "CertificateStatus",
    "Conflict",
    "HolderFacts",
    "MyKeyIdUnavailable",
    "Replacement",
    "SerialBound",
    "Store",
    "UnitOfWork",
    "WriterBusy",
]


class CertificateStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HolderFacts:
    """What J-LIS tells a relying party about the holder of a certificate.

    ``person_ref`` is an opaque reference to the *person*: assigned by J-LIS when their first
    card is issued and carried along its old→new linkage, so it is the same across certificate
    renewals and reissued cards. It is never the My Number and cannot be derived from it.
    ``card_applied_on`` is the day J-LIS received the application for the card that holds the
    certificate (申請受付日), which is not the day the card or certificate was issued.
    """

    person_ref: str
    card_applied_on: date


@dataclass(frozen=True, slots=True)
class Replacement:
    """The certificate J-LIS issued in place of another (a renewal at the window, or a
    reissued card's), with its validity: a relying party learns of it without the holder
    presenting the new card."""

    serial: int
    not_before: datetime
    not_after: datetime


class CertificateAuthority(Protocol):
    """J-LIS as a relying party sees it."""

    @property
    def auth_ca_certificate(self) -> bytes:
        """DER of the user-authentication CA: the trust anchor."""
        ...

    def status(self, serial: int) -> CertificateStatus:
        """Revocation status (CRL/OCSP) of a user-authentication certificate."""
        ...

    def prefetch_status(self, serial: int) -> None:
        """A hint: :meth:`status` of ``serial`` is asked next in this unit of work. Where the
        answer can come with the unit's next store round trip it is fetched then (J-LIS in
        the platform's database); elsewhere this does nothing."""
        ...

    def predecessor(self, serial: int) -> int | None:
        """The serial this certificate replaced (renewal or reissued card), if any."""
        ...

    def holder_facts(self, serial: int) -> HolderFacts | None:
        """The person and card-application date behind a certificate; None for an unknown one."""
        ...

    def replacement(self, serial: int) -> Replacement | None:
        """The certificate that renewed or reissued this one, if any (None too when J-LIS
        did not record when it starts)."""
        ...


class Conflict(Exception):
    """A uniqueness rule of the store fired (the value is taken)."""


class MyKeyIdUnavailable(Conflict):
    """The MyKey ID is current on another record or was retired (never reissued)."""


class SerialBound(Conflict):
    """The certificate serial is bound to an active record already."""


class StoreUnavailable(Exception):
    """The store cannot do this now; the transaction was rolled back (nothing half-written).

    ``kind`` is ``"busy"`` (a lock or serialisation timed out, too many connections: retry
    in a moment) or ``"full"`` (the disk or the database is full: retry after the operator
    made room). The message names what the database said.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WriterBusy(Exception):
    """Another thread or process is writing, and the caller asked not to wait for it: nothing
    was done (raised before the transaction began)."""


class UnitOfWork(Protocol):
    """One transaction; everything done through it commits or rolls back together."""

    # challenges
    def add_challenge(self, challenge: Challenge) -> None: ...
    def consume_challenge(self, challenge_id: str, now: datetime) -> Challenge | None:
        """Mark used and return it as it was; None if unknown. Used ones come back with used_at."""
        ...

    def consume_challenge_and_look_up(
        self, challenge_id: str, now: datetime, serial: int
    ) -> tuple[Challenge | None, MyKeyRecord | None]:
        """:meth:`consume_challenge` and :meth:`record_by_serial`, together: a store may
        answer both at once (one round trip where each costs one)."""
        ...

    # MyKey records
    def record_by_serial(self, serial: int) -> MyKeyRecord | None:
        """The record (active or stopped, never revoked) a certificate serial is bound to."""
        ...

    def record_by_mykey_id(self, mykey_id: str, *, lock: bool = False) -> MyKeyRecord | None:
        """The record whose current ID this is (active or revoked); with ``lock``, its row
        is held until commit (racing password attempts then count one at a time)."""
        ...

    def record(self, record_id: int, *, lock: bool = False) -> MyKeyRecord | None:
        """With ``lock``, held until commit: operations on one record then run one at a time."""
        ...

    def mykey_id_used(self, mykey_id: str) -> bool:
        """True if the ID is current anywhere or was ever retired (IDs are never reused)."""
        ...

    def create_record(
        self, mykey_id: str, now: datetime, person_id: int | None = None
    ) -> MyKeyRecord:
        """Raises :class:`MyKeyIdUnavailable` if the ID is taken or was retired."""
        ...

    def create_bound_record(
        self,
        mykey_id: str,
        now: datetime,
        person_ref: str,
        serial: int,
        valid: tuple[datetime, datetime] | None = None,
    ) -> MyKeyRecord:
        """A new record with ``mykey_id`` for J-LIS's person ``person_ref`` (the person created
        on first sight), bound to ``serial``: :meth:`person`, :meth:`create_record` and
        :meth:`bind_serial` at once (PostgreSQL: in two statements instead of five). Raises
        :class:`MyKeyIdUnavailable`, or :class:`SerialBound` having created no record."""
        ...

    def discard_record(self, record_id: int) -> None:
        """Delete a record this transaction created and nothing refers to yet (the loser of
        an issuance race); the rest of the transaction stays."""
        ...

    def person(self, person_ref: str, now: datetime) -> int:
        """The platform's person ID for J-LIS's person reference, created on first sight."""
        ...

    def person_record(self, person_id: int) -> MyKeyRecord | None:
        """The person's MyKey record that is not revoked, if any (a person has at most one)."""
        ...

    def bind_serial(
        self,
        record_id: int,
        serial: int,
        now: datetime,
        *,
        valid: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Raises :class:`SerialBound` if the serial is bound to an active record already.

        ``valid`` is the certificate's (not_before, not_after), kept with the binding.
        """
        ...

    def unbind_serials(self, record_id: int) -> list[int]: ...
    def change_mykey_id(self, record_id: int, new_id: str, now: datetime) -> None:
        """Retire the current ID for good and make ``new_id`` current; Conflict if taken."""
        ...

    def update_record(self, record: MyKeyRecord) -> None:
        """Persist status, password hash and password-failure fields."""
        ...

    # sessions
    def add_session(self, session: Session) -> None: ...
    def session(self, token_hash: str) -> Session | None: ...
    def end_sessions(self, record_id: int) -> None: ...

    # audit
    def audit(self, event: AuditEvent, now: datetime) -> None:
        """Append to the hash-chained log in this transaction."""
        ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[UnitOfWork]: ...
