"""What J-LIS knows about every certificate it issued: status, revocation, old→new linkage.

:class:`CertificateRegistry` is the record (in memory, or a ``registry.json`` beside the CA,
written atomically under a lock). :class:`JlisServices` puts it together with the CA and is
what relying parties talk to: certificate status, the predecessor of a renewed or reissued
certificate, a signed CRL and real OCSP answers.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from mynahil.files import flocked, write_atomically
from reference_impl.mykey.ports import CertificateStatus

from .ca import JlisCA

__all__ = ["CertificateEntry", "CertificateRegistry", "JlisServices", "ocsp_request_for"]

REASONS = {
    "lost": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "suspended": x509.ReasonFlags.certificate_hold,
    "holder_request": x509.ReasonFlags.cessation_of_operation,
}


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    serial: int
    kind: str  # "auth" or "sign"
    card_id: str
    not_after: str  # ISO timestamp
    replaces: int | None = None
    revoked_at: str | None = None
    reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class CertificateRegistry:
    """Every issued certificate by serial; persisted in ``folder`` when given."""

    FILE = "registry.json"

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else None
        self._lock = threading.Lock()
        self._entries: dict[int, CertificateEntry] = {}
        self._successors: dict[int, int] = {}
        self.crl_number = 0
        self._seen: tuple[int, int] | None = None
        self._refresh()

    # --- persistence -----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload when another process (``mynahil card new``, a second server) changed the file."""
        if self.folder is None:
            return
        try:
            info = os.stat(self.folder / self.FILE)
        except FileNotFoundError:
            return
        seen = (info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            self._load()
            self._seen = seen

    def _load(self) -> None:
        assert self.folder is not None
        data = json.loads((self.folder / self.FILE).read_text(encoding="utf-8"))
        self._entries.clear()
        self._successors.clear()
        self.crl_number = int(data.get("crl_number", 0))
        for raw in data["certificates"]:
            entry = CertificateEntry(
                **{**raw, "serial": int(raw["serial"]), "replaces": _int(raw["replaces"])}
            )
            self._index(entry)

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Read-modify-write under the thread lock and, with a folder, the file lock."""
        with self._lock:
            if self.folder is None:
                yield
                return
            with flocked(self.folder / ".registry.lock"):
                self._seen = None
                self._refresh()
                yield
                self._save()

    def _save(self) -> None:
        if self.folder is None:
            return
        body = {
            "crl_number": self.crl_number,
            "certificates": [
                {**asdict(e), "serial": str(e.serial), "replaces": _str(e.replaces)}
                for e in self._entries.values()
            ],
        }
        write_atomically(self.folder / self.FILE, json.dumps(body, indent=1).encode())
        info = os.stat(self.folder / self.FILE)
        self._seen = (info.st_mtime_ns, info.st_size)

    def _index(self, entry: CertificateEntry) -> None:
        self._entries[entry.serial] = entry
        if entry.replaces is not None:
            self._successors[entry.replaces] = entry.serial

    # --- recording -------------------------------------------------------------------------

    def record(
        self, certificate_der: bytes, kind: str, card_id: str, replaces: int | None = None
    ) -> int:
        cert = x509.load_der_x509_certificate(certificate_der)
        if replaces is not None and replaces not in self._entries:
            raise ValueError(f"certificate {replaces} is not in the registry")
        entry = CertificateEntry(
            cert.serial_number, kind, card_id, cert.not_valid_after_utc.isoformat(), replaces
        )
        with self._changing():
            self._index(entry)
        return entry.serial

    def revoke(self, serial: int, reason: str, at: datetime) -> None:
        """Revoke (idempotent: a revoked certificate keeps its first reason and time)."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        with self._changing():
            entry = self._entries.get(serial)
            if entry is None:
                raise KeyError(f"certificate {serial} was not issued by this J-LIS")
            if not entry.revoked:
                self._entries[serial] = replace(
                    entry, revoked_at=at.astimezone(UTC).isoformat(), reason=reason
                )

    # --- questions relying parties ask --------------------------------------------------------

    def entry(self, serial: int) -> CertificateEntry | None:
        self._refresh()
        return self._entries.get(serial)

    def status(self, serial: int) -> CertificateStatus:
        self._refresh()
        entry = self._entries.get(serial)
        if entry is None:
            return CertificateStatus.UNKNOWN
        return CertificateStatus.REVOKED if entry.revoked else CertificateStatus.GOOD

    def predecessor(self, serial: int) -> int | None:
        self._refresh()
        entry = self._entries.get(serial)
        return entry.replaces if entry else None

    def successor(self, serial: int) -> int | None:
        self._refresh()
        return self._successors.get(serial)

    def revoked(self, kind: str) -> list[CertificateEntry]:
        self._refresh()
        return [e for e in self._entries.values() if e.kind == kind and e.revoked]

    def next_crl_number(self) -> int:
        with self._changing():
            self.crl_number += 1
        return self.crl_number


def _int(value: str | int | None) -> int | None:
    return None if value is None else int(value)


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)


def ocsp_request_for(certificate_der: bytes, issuer_der: bytes) -> bytes:
    """A DER OCSP request for one certificate (SHA-1 CertID, as RFC 6960 clients send)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(certificate_der),
        x509.load_der_x509_certificate(issuer_der),
        hashes.SHA1(),
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


class JlisServices:
    """J-LIS as relying parties reach it: satisfies the MyKey service's CertificateAuthority."""

    def __init__(self, ca: JlisCA, registry: CertificateRegistry) -> None:
        self.ca = ca
        self.registry = registry

    @property
    def auth_ca_certificate(self) -> bytes:
        return self.ca.auth_ca_certificate

    def status(self, serial: int) -> CertificateStatus:
        return self.registry.status(serial)

    def predecessor(self, serial: int) -> int | None:
        return self.registry.predecessor(serial)

    def crl(
        self, kind: str, *, now: datetime | None = None, valid_for: timedelta = timedelta(hours=24)
    ) -> bytes:
        """A DER CRL of ``kind`` ("auth"/"sign") certificates, signed by that root."""
        key, issuer = self.ca.signer(kind)
        now = now or datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now)
            .next_update(now + valid_for)
            .add_extension(x509.CRLNumber(self.registry.next_crl_number()), critical=False)
        )
        for entry in self.registry.revoked(kind):
            assert entry.revoked_at is not None
            assert entry.reason is not None
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(datetime.fromisoformat(entry.revoked_at))
                .add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_response(self, request_der: bytes, *, now: datetime | None = None) -> bytes:
        """A signed OCSP answer; a request that cannot be read gets MALFORMED_REQUEST."""
        now = now or datetime.now(UTC)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            serial = request.serial_number
        except ValueError:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        entry = self.registry.entry(serial)
        kind = entry.kind if entry else "auth"
        key, issuer = self.ca.signer(kind)
        if request.issuer_key_hash != _key_hash(issuer, request.hash_algorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        cert_status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if entry is not None and entry.revoked:
            assert entry.revoked_at is not None
            assert entry.reason is not None
            cert_status = ocsp.OCSPCertStatus.REVOKED
            revoked_at, reason = datetime.fromisoformat(entry.revoked_at), REASONS[entry.reason]
        elif entry is not None:
            cert_status = ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=request.hash_algorithm,
            cert_status=cert_status,
            this_update=now,
            next_update=now + timedelta(hours=1),
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _key_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """RFC 6960 issuerKeyHash: the hash of the subjectPublicKey bits (PKCS#1 for RSA)."""
    key = issuer.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    digest = hashes.Hash(algorithm)
    digest.update(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    return digest.finalize()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
