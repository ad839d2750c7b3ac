"""What J-LIS knows about every card and certificate it issued: status, revocation, old→new
linkage, the person behind a card and when the card was applied for.

:class:`RegistryStore` is the record's interface and :class:`RegistryRules` its rules, written
once over a few primitives. :class:`CertificateRegistry` keeps the record in memory or in a
``registry.json`` beside the CA (written atomically under a lock: the standalone J-LIS and
``mynahil card new``); ``mynahil.reference_impl.store.jlis_sql.SqlRegistry`` keeps it in the
platform's database, where every worker and instance sees the same record.
:class:`JlisServices` puts it together with the CA and is what relying parties talk to:
certificate status, the predecessor of a renewed or reissued certificate, the holder's facts
(person reference, card-application date), a signed CRL and real OCSP answers.

Cards: every issued card has a :class:`CardRecord` (its card id, the person reference, the
day J-LIS received its application, the day it was issued, and the card it reissued). The
person reference is a random token drawn when the person's first card is issued and copied to
every card reissued from it, so it is the same across renewals and reissues; it is never the
My Number nor derived from it.

Files written before card records existed have no ``cards`` (they still load). For a
certificate whose card has no record, J-LIS answers with documented defaults: the person
reference ``legacy-<card id of the first card in its linkage chain>`` (stable across that
chain's renewals and reissues) and the card-application date :data:`LEGACY_CARD_APPLIED_ON`
(2000-01-01: such a holder counts as someone who already had a card).

Choice: a revocation takes effect when it is recorded, whatever its date. Status, CRLs and
OCSP answers list every recorded revocation even when ``now`` is earlier than its date, so a
simulation whose clock runs ahead of (or behind) the wall clock still sees a lost card as lost.
"""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, cast, get_args

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from mynahil.files import flocked, write_atomically
from mynahil.reference_impl.mykey.ports import CertificateStatus, HolderFacts, Replacement

from .ca import JlisCA

__all__ = [
    "LEGACY_CARD_APPLIED_ON",
    "REASONS",
    "CardRecord",
    "CertificateEntry",
    "CertificateRegistry",
    "JlisServices",
    "Kind",
    "RegistryFileError",
    "RegistryRules",
    "RegistryStore",
    "UnknownCertificate",
    "ocsp_request_for",
]

Kind = Literal["auth", "sign"]
"""Which root issued a certificate: user authentication or digital signature."""

KINDS: tuple[Kind, ...] = get_args(Kind)

REASONS: dict[str, x509.ReasonFlags] = {
    "lost": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "suspended": x509.ReasonFlags.certificate_hold,
    "holder_request": x509.ReasonFlags.cessation_of_operation,
}
"""Why J-LIS revokes a certificate, and the RFC 5280 reason code CRLs and OCSP carry for it."""

FORMAT = "mynahil-registry/1"  # the ``cards`` list is optional: older files lack it
LEGACY_CARD_APPLIED_ON = date(2000, 1, 1)
"""The card-application date reported for a card recorded before J-LIS kept one."""
LEGACY_PERSON_PREFIX = "legacy-"
CRL_VALIDITY = timedelta(hours=24)
OCSP_VALIDITY = timedelta(hours=1)


class RegistryFileError(ValueError):
    """A ``registry.json`` that cannot be read; the message names the file and the problem."""


class UnknownCertificate(KeyError):
    """A serial this J-LIS never issued (or never recorded)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown certificate"


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """One issued certificate as J-LIS remembers it."""

    serial: int
    kind: Kind
    card_id: str  # the card that holds the key: opaque, never the holder's data
    not_after: datetime
    replaces: int | None = None  # the serial this one renewed or reissued
    revoked_at: datetime | None = None
    reason: str | None = None  # a key of REASONS, set together with revoked_at
    not_before: datetime | None = None  # None: recorded before J-LIS kept it

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Any]:
        """Serials as decimal strings: they are about 160 bits, more than JSON readers keep."""
        return {
            "serial": str(self.serial),
            "kind": self.kind,
            "card_id": self.card_id,
            "not_after": self.not_after.isoformat(),
            "replaces": None if self.replaces is None else str(self.replaces),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "reason": self.reason,
            "not_before": None if self.not_before is None else self.not_before.isoformat(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CertificateEntry:
        kind = raw["kind"]
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}")
        reason = raw.get("reason")
        revoked_at = raw.get("revoked_at")
        not_before = raw.get("not_before")
        if (reason is None) != (revoked_at is None) or (
            reason is not None and reason not in REASONS
        ):
            raise ValueError(f"revocation {revoked_at!r}/{reason!r}")
        return cls(
            serial=int(raw["serial"]),
            kind=cast(Kind, kind),
            card_id=str(raw["card_id"]),
            not_after=_aware(datetime.fromisoformat(raw["not_after"])),
            replaces=None if raw.get("replaces") is None else int(raw["replaces"]),
            revoked_at=None if revoked_at is None else _aware(datetime.fromisoformat(revoked_at)),
            reason=reason,
            not_before=None if not_before is None else _aware(datetime.fromisoformat(not_before)),
        )


@dataclass(frozen=True, slots=True)
class CardRecord:
    """One issued card as J-LIS remembers it (no holder data: the person is a reference)."""

    card_id: str
    person_ref: str
    applied_on: date  # 申請受付日: the day J-LIS received the card application
    issued_on: date
    replaces: str | None = None  # the card id this card reissued

    def to_json(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id,
            "person_ref": self.person_ref,
            "applied_on": self.applied_on.isoformat(),
            "issued_on": self.issued_on.isoformat(),
            "replaces": self.replaces,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CardRecord:
        card = cls(
            card_id=str(raw["card_id"]),
            person_ref=str(raw["person_ref"]),
            applied_on=date.fromisoformat(raw["applied_on"]),
            issued_on=date.fromisoformat(raw["issued_on"]),
            replaces=None if raw.get("replaces") is None else str(raw["replaces"]),
        )
        if not card.card_id or not card.person_ref:
            raise ValueError(f"card {card.card_id!r}: empty card_id or person_ref")
        if card.applied_on > card.issued_on:
            raise ValueError(f"card {card.card_id}: applied_on after issued_on")
        return card


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


LINKAGE_BOUND = 10_000
"""The longest old→new chain :meth:`RegistryRules.holder_facts` follows (a cycle cannot loop)."""


class RegistryStore(Protocol):
    """J-LIS's record of cards and certificates, wherever it is kept."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group changes: all are kept, or (on error) none. May be nested."""
        ...

    def record(
        self, certificate_der: bytes, kind: str, card_id: str, replaces: int | None = None
    ) -> int: ...

    def record_card(self, card: CardRecord) -> None: ...

    def revoke(self, serial: int, reason: str, at: datetime) -> None: ...

    def next_crl_number(self) -> int: ...

    def entry(self, serial: int) -> CertificateEntry | None: ...

    def card(self, card_id: str) -> CardRecord | None: ...

    def holder_facts(self, serial: int) -> HolderFacts | None: ...

    def status(self, serial: int) -> CertificateStatus: ...

    def prefetch_status(self, serial: int) -> None: ...

    def predecessor(self, serial: int) -> int | None: ...

    def successor(self, serial: int) -> int | None: ...

    def revoked(self, kind: str) -> list[CertificateEntry]: ...

    def entries(self) -> list[CertificateEntry]: ...


class RegistryRules(ABC):
    """The registry's rules (what may be recorded, revoked, linked; what J-LIS answers), over
    the primitives a keeper implements. The checks and the change run in one
    :meth:`transaction`, so a keeper that serialises transactions keeps the rules under
    concurrency; a keeper's unique keys (one successor per certificate and per card) are the
    last word when two writers race."""

    # --- primitives -------------------------------------------------------------------------

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]: ...

    @abstractmethod
    def entry(self, serial: int) -> CertificateEntry | None: ...

    @abstractmethod
    def card(self, card_id: str) -> CardRecord | None:
        """The record of an issued card, or None (an unknown card, or one from an old file)."""

    @abstractmethod
    def successor(self, serial: int) -> int | None:
        """The serial that renewed or reissued this certificate, if any."""

    @abstractmethod
    def reissued_as(self, card_id: str) -> str | None:
        """The card that reissued this card, if any."""

    @abstractmethod
    def revoked(self, kind: str) -> list[CertificateEntry]:
        """The revoked certificates of ``kind``, by serial."""

    @abstractmethod
    def entries(self) -> list[CertificateEntry]:
        """Every recorded certificate, by serial."""

    @abstractmethod
    def next_crl_number(self) -> int:
        """The number for the next CRL: one more than the last, persisted."""

    @abstractmethod
    def _add_entry(self, entry: CertificateEntry) -> None:
        """Keep a new certificate (checked: its serial is new, what it replaces is free)."""

    @abstractmethod
    def _add_card(self, card: CardRecord) -> None:
        """Keep a new card (checked)."""

    @abstractmethod
    def _add_revocation(self, entry: CertificateEntry, at: datetime, reason: str) -> None:
        """Mark a recorded, unrevoked certificate revoked."""

    # --- recording --------------------------------------------------------------------------

    def record(
        self, certificate_der: bytes, kind: str, card_id: str, replaces: int | None = None
    ) -> int:
        """Remember an issued certificate (``kind`` "auth"/"sign") held by card ``card_id``.

        ``replaces`` is the serial it renews or reissues: a recorded certificate of the same
        kind that nothing replaced yet (an old certificate has at most one successor).
        Recording the same certificate again is a no-op. Returns the serial.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be 'auth' or 'sign', got {kind!r}")
        cert = x509.load_der_x509_certificate(certificate_der)
        entry = CertificateEntry(
            serial=int(cert.serial_number),
            kind=kind,
            card_id=card_id,
            not_after=cert.not_valid_after_utc,
            replaces=replaces,
            not_before=cert.not_valid_before_utc,
        )
        with self.transaction():
            existing = self.entry(entry.serial)
            if existing is not None:
                known = replace(existing, revoked_at=None, reason=None)
                if known.not_before is None:  # recorded by an older J-LIS, without the start
                    known = replace(known, not_before=entry.not_before)
                if known != entry:
                    raise ValueError(f"certificate {entry.serial} is already recorded otherwise")
                return entry.serial
            if replaces is not None:
                self._check_replaceable(replaces, entry)
            self._add_entry(entry)
        return entry.serial

    def record_card(self, card: CardRecord) -> None:
        """Remember an issued card. A reissued card (``replaces``) must name a recorded card
        of the same person that nothing reissued yet. Recording the same card again is a
        no-op; recording it with other facts is a ValueError."""
        if card.applied_on > card.issued_on:
            raise ValueError(
                f"the card-application date {card.applied_on} is after the issuance date "
                f"{card.issued_on}"
            )
        with self.transaction():
            existing = self.card(card.card_id)
            if existing is not None:
                if existing != card:
                    raise ValueError(f"card {card.card_id} is already recorded otherwise")
                return
            if card.replaces is not None:
                old = self.card(card.replaces)
                if old is None:
                    raise ValueError(f"card {card.replaces} is not in the registry")
                if old.person_ref != card.person_ref:
                    raise ValueError(f"card {card.replaces} belongs to another person")
                taken = self.reissued_as(card.replaces)
                if taken is not None:
                    raise ValueError(f"card {card.replaces} was already reissued as {taken}")
            self._add_card(card)

    def _check_replaceable(self, old_serial: int, new: CertificateEntry) -> None:
        old = self.entry(old_serial)
        if old is None:
            raise ValueError(f"certificate {old_serial} is not in the registry")
        if old.kind != new.kind:
            raise ValueError(f"a {new.kind} certificate cannot replace {old.kind} {old_serial}")
        successor = self.successor(old_serial)
        if successor is not None:
            raise ValueError(f"certificate {old_serial} was already replaced by {successor}")

    def revoke(self, serial: int, reason: str, at: datetime) -> None:
        """Revoke (idempotent: a revoked certificate keeps its first reason and time).

        ``reason`` is a key of :data:`REASONS`; ``at`` must carry a time zone.
        Raises :class:`UnknownCertificate` for a serial this J-LIS never recorded.
        """
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
        when = _aware(at)
        with self.transaction():
            entry = self.entry(serial)
            if entry is None:
                raise UnknownCertificate(f"certificate {serial} was not issued by this J-LIS")
            if not entry.revoked:
                self._add_revocation(entry, when, reason)

    # --- questions relying parties ask --------------------------------------------------------

    def holder_facts(self, serial: int) -> HolderFacts | None:
        """The person and card-application date behind a certificate; None for an unknown
        serial. A card recorded before card records existed gets the module's legacy defaults.
        """
        entry = self.entry(serial)
        if entry is None:
            return None
        card = self.card(entry.card_id)
        if card is not None:
            return HolderFacts(card.person_ref, card.applied_on)
        first, seen = entry, {entry.serial}
        for _ in range(LINKAGE_BOUND):
            older = self.entry(first.replaces) if first.replaces is not None else None
            if older is None or older.serial in seen:
                break
            first = older
            seen.add(older.serial)
        return HolderFacts(LEGACY_PERSON_PREFIX + first.card_id, LEGACY_CARD_APPLIED_ON)

    def status(self, serial: int) -> CertificateStatus:
        """GOOD or REVOKED for a recorded certificate, UNKNOWN for any other serial."""
        entry = self.entry(serial)
        if entry is None:
            return CertificateStatus.UNKNOWN
        return CertificateStatus.REVOKED if entry.revoked else CertificateStatus.GOOD

    def prefetch_status(self, serial: int) -> None:
        """A hint that :meth:`status` of ``serial`` comes next (see the MyKey service's
        ``CertificateAuthority``): a keeper that can fetch it with other work does."""
        return  # here the question goes when it is asked

    def predecessor(self, serial: int) -> int | None:
        """The serial this certificate renewed or reissued, if any."""
        entry = self.entry(serial)
        return entry.replaces if entry else None


class CertificateRegistry(RegistryRules):
    """Every issued certificate by serial; persisted in ``folder`` when given.

    Thread-safe, and with a folder safe across processes: each change (or each
    :meth:`transaction`) re-reads the file under an exclusive ``flock`` and rewrites it
    atomically; readers pick up another process's changes on their next question.
    """

    FILE = "registry.json"
    LOCK_FILE = ".registry.lock"

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(); only the outermost one locks and saves
        self._entries: dict[int, CertificateEntry] = {}
        self._successors: dict[int, int] = {}
        self._cards: dict[str, CardRecord] = {}
        self.crl_number = 0
        self._seen: tuple[int, int, int] | None = None
        # Built once: every status question checks the file, and building a Path each time
        # cost more than the stat.
        self._file = str(self.folder / self.FILE) if self.folder is not None else None
        with self._lock:
            self._refresh()

    # --- persistence -----------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The ``registry.json`` file, or None for an in-memory registry."""
        return self.folder / self.FILE if self.folder is not None else None

    def _refresh(self) -> None:
        """Reload when another process (``mynahil card new``, a second server) changed the file.

        Called with ``self._lock`` held.
        """
        if self._file is None or self._depth:
            return
        try:
            info = os.stat(self._file)
        except FileNotFoundError:
            return
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            self._load(Path(self._file))
            self._seen = seen

    def _load(self, path: Path) -> None:
        """Replace the in-memory view with the file's (new dicts: readers never see a half)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format", FORMAT) != FORMAT:
                raise ValueError(f"format {data['format']!r}, expected {FORMAT!r}")
            crl_number = int(data.get("crl_number", 0))
            entries = [CertificateEntry.from_json(raw) for raw in data["certificates"]]
            cards = [CardRecord.from_json(raw) for raw in data.get("cards", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryFileError(f"{path}: unreadable certificate registry ({exc})") from None
        by_serial = {entry.serial: entry for entry in entries}
        self._entries = by_serial
        self._successors = {e.replaces: e.serial for e in entries if e.replaces is not None}
        self._cards = {card.card_id: card for card in cards}
        self.crl_number = crl_number

    def _save(self) -> None:
        if self.path is None:
            return
        body = {
            "format": FORMAT,
            "crl_number": self.crl_number,
            "certificates": [entry.to_json() for entry in self._entries.values()],
            "cards": [card.to_json() for card in self._cards.values()],
        }
        write_atomically(self.path, json.dumps(body, indent=1, ensure_ascii=False).encode())
        info = os.stat(self.path)
        self._seen = (info.st_ino, info.st_mtime_ns, info.st_size)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group changes: they are saved together in one atomic write, or (on error) none is.

        Holds the registry (and, with a folder, the file lock) for the block, so a
        renewal's revocations and records are seen by others all at once. May be nested.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
            with (
                flocked(self.folder / self.LOCK_FILE) if self.folder is not None else nullcontext()
            ):
                self._seen = None
                self._refresh()
                before = (self._entries, self._successors, self._cards, self.crl_number)
                self._entries, self._successors = dict(self._entries), dict(self._successors)
                self._cards = dict(self._cards)
                self._depth = 1
                try:
                    yield
                    self._save()
                except BaseException:
                    self._entries, self._successors, self._cards, self.crl_number = before
                    self._seen = None  # re-read the file next time: it is the truth
                    raise
                finally:
                    self._depth = 0

    # --- primitives ---------------------------------------------------------------------------

    def _add_entry(self, entry: CertificateEntry) -> None:
        if entry.replaces is not None:
            self._successors[entry.replaces] = entry.serial
        self._entries[entry.serial] = entry

    def _add_card(self, card: CardRecord) -> None:
        self._cards[card.card_id] = card

    def _add_revocation(self, entry: CertificateEntry, at: datetime, reason: str) -> None:
        self._entries[entry.serial] = replace(entry, revoked_at=at, reason=reason)

    def next_crl_number(self) -> int:
        """The number for the next CRL: one more than the last, persisted."""
        with self.transaction():
            self.crl_number += 1
            return self.crl_number

    def entry(self, serial: int) -> CertificateEntry | None:
        with self._lock:
            self._refresh()
            return self._entries.get(serial)

    def card(self, card_id: str) -> CardRecord | None:
        """The record of an issued card, or None (an unknown card, or one from an old file)."""
        with self._lock:
            self._refresh()
            return self._cards.get(card_id)

    def reissued_as(self, card_id: str) -> str | None:
        with self._lock:
            self._refresh()
            return next((c.card_id for c in self._cards.values() if c.replaces == card_id), None)

    def successor(self, serial: int) -> int | None:
        """The serial that renewed or reissued this certificate, if any."""
        with self._lock:
            self._refresh()
            return self._successors.get(serial)

    def revoked(self, kind: str) -> list[CertificateEntry]:
        """The revoked certificates of ``kind``, by serial."""
        with self._lock:
            self._refresh()
            return sorted(
                (e for e in self._entries.values() if e.kind == kind and e.revoked),
                key=lambda e: e.serial,
            )

    def entries(self) -> list[CertificateEntry]:
        """Every recorded certificate, by serial."""
        with self._lock:
            self._refresh()
            return sorted(self._entries.values(), key=lambda e: e.serial)


def ocsp_request_for(
    certificate_der: bytes, issuer_der: bytes, *, nonce: bytes | None = None
) -> bytes:
    """A DER OCSP request for one certificate (SHA-1 CertID, as RFC 6960 clients send)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(certificate_der),
        x509.load_der_x509_certificate(issuer_der),
        hashes.SHA1(),
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


class JlisServices:
    """J-LIS as relying parties reach it: satisfies the MyKey service's CertificateAuthority."""

    def __init__(self, ca: JlisCA, registry: RegistryStore) -> None:
        self.ca = ca
        self.registry = registry

    @property
    def auth_ca_certificate(self) -> bytes:
        return self.ca.auth_ca_certificate

    def status(self, serial: int) -> CertificateStatus:
        return self.registry.status(serial)

    def prefetch_status(self, serial: int) -> None:
        self.registry.prefetch_status(serial)

    def predecessor(self, serial: int) -> int | None:
        return self.registry.predecessor(serial)

    def successor(self, serial: int) -> int | None:
        return self.registry.successor(serial)

    def replacement(self, serial: int) -> Replacement | None:
        successor = self.registry.successor(serial)
        entry = self.registry.entry(successor) if successor is not None else None
        if entry is None or entry.not_before is None:
            return None
        return Replacement(entry.serial, entry.not_before, entry.not_after)

    def holder_facts(self, serial: int) -> HolderFacts | None:
        return self.registry.holder_facts(serial)

    def crl(
        self,
        kind: str,
        *,
        now: datetime | None = None,
        next_update: datetime | None = None,
        valid_for: timedelta = CRL_VALIDITY,
    ) -> bytes:
        """A DER CRL of ``kind`` ("auth"/"sign") certificates, signed by that root.

        Lists every revoked certificate of that kind with its date and reason code; each
        CRL gets the next CRL number. ``next_update`` defaults to ``now + valid_for``.
        """
        key, issuer = self.ca.signer(kind)
        now = _aware(now) if now is not None else datetime.now(UTC)
        next_update = _aware(next_update) if next_update is not None else now + valid_for
        if next_update <= now:
            raise ValueError(f"next_update {next_update} is not after now {now}")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now)
            .next_update(next_update)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                critical=False,
            )
        )
        for entry in self.registry.revoked(kind):
            assert entry.revoked_at is not None
            assert entry.reason is not None
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
                .add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        number = self.registry.next_crl_number()
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_response(self, request_der: bytes, *, now: datetime | None = None) -> bytes:
        """A signed OCSP answer (RFC 6960) to one DER request; never raises on bad input.

        MALFORMED_REQUEST for anything that is not one readable request, UNAUTHORIZED when
        it names neither J-LIS root, else a response signed by the root it names: GOOD,
        REVOKED (time and reason) or UNKNOWN (a serial that root never issued). A nonce
        in the request is echoed.
        """
        now = _aware(now) if now is not None else datetime.now(UTC)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            serial = request.serial_number
            algorithm = request.hash_algorithm
            name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
            nonce = _nonce(request.extensions)
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if serial < 0:  # RFC 5280 4.1.2.2: a serial number is positive (nor can one be answered)
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        kind = self._issuer_kind(name_hash, key_hash, algorithm)
        if kind is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        key, issuer = self.ca.signer(kind)
        entry = self.registry.entry(serial)
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if entry is not None and entry.kind == kind:
            status = ocsp.OCSPCertStatus.GOOD
            if entry.revoked_at is not None and entry.reason is not None:
                status = ocsp.OCSPCertStatus.REVOKED
                revoked_at, reason = entry.revoked_at, REASONS[entry.reason]
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + OCSP_VALIDITY,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _issuer_kind(
        self, name_hash: bytes, key_hash: bytes, algorithm: hashes.HashAlgorithm
    ) -> Kind | None:
        """Which root a CertID names (both its name hash and key hash must match)."""
        for kind in KINDS:
            _key, issuer = self.ca.signer(kind)
            subject = issuer.subject.public_bytes()
            if (_digest(algorithm, subject), _key_hash(issuer, algorithm)) == (name_hash, key_hash):
                return kind
        return None


def _nonce(extensions: Iterable[x509.Extension[x509.ExtensionType]]) -> bytes | None:
    for extension in extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            return extension.value.nonce
    return None


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _key_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """RFC 6960 issuerKeyHash: the hash of the subjectPublicKey bits (PKCS#1 for RSA)."""
    key = issuer.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return _digest(
        algorithm, key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    )


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
