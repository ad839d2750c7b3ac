"""The emulated J-LIS certificate authority: one root for user authentication, one for signing.

Each root is a self-signed RSA-2048 certificate (sha256WithRSAEncryption) named as JPKI.md
describes. A CA may live in a folder (two keys and two certificates as PEM, and the serial
counter) or in memory only. Folder writes go to a temporary file that is fsynced and renamed,
so a killed process leaves the old file or the new one, never a torn one. The CA keys are
kept unencrypted (PKCS#8 PEM, mode 0600): this is an emulator, not a CA to trust.

Serial numbers are the 発行番号 a MyKey ID binds to, so they never repeat, and they must not be
guessable: knowing one card's serial must not tell anyone another's (the lost-card hotline
and OCSP take a serial). Choice: a serial is ``prefix << 104 | counter << 64 | random``, where
``prefix`` is a random 54-bit number fixed when the CA is created (it keeps two CAs, say two
test sessions, apart: every emulated CA has the same names), ``counter`` makes each serial
unique (in a folder it is advanced under an exclusive ``flock``, safe across processes issuing
at once; in memory under a lock), and ``random`` is 64 bits from the operating system's CSPRNG
(:mod:`secrets`), fresh for each certificate. 158 bits: within RFC 5280's 20 octets.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mynahil.card_emulator.state import Holder
from mynahil.carddata import CvCertificate
from mynahil.files import flocked as _flocked
from mynahil.files import write_atomically as _write_atomically
from mynahil.timezone import JST

from .keypool import KEY_SIZE, PUBLIC_EXPONENT

__all__ = ["CAFolderError", "JlisCA"]

AGENCY = "Japan Agency for Local Authority Information Systems"
AUTH_UNIT = "JPKI for user authentication"
SIGN_UNIT = "JPKI for digital signature"
DEFAULT_AUTH_CRL_URL = "http://127.0.0.1:8000/v1/jlis/crl/auth"
DEFAULT_SIGN_CRL_URL = "http://127.0.0.1:8000/v1/jlis/crl/sign"

# Choice: the emulated roots are valid for this century, so cards issued on any date a test
# picks (an "expired" card issued years ago included) chain to a root that was valid then.
ROOT_NOT_BEFORE = date(2000, 1, 1)
ROOT_NOT_AFTER = date(2099, 12, 31)

COUNTER_BITS = 40
PREFIX_BITS = 62  # as stored in serial.json (older folders too); serials use 54 of them
SERIAL_PREFIX_BITS = 54
RANDOM_BITS = 64  # unguessable part of every serial: RFC 5280 asks for at least 20 bits
MAX_CN_LENGTH = 64  # X.520 ub-common-name

AUTH_KEY_FILE = "auth-ca.key.pem"
AUTH_CERT_FILE = "auth-ca.crt.pem"
SIGN_KEY_FILE = "sign-ca.key.pem"
SIGN_CERT_FILE = "sign-ca.crt.pem"
SERIAL_FILE = "serial.json"
# The J-LIS key that signs the card-info and card-face APs' data at issuance; certified (a
# card-verifiable certificate, EF 0004 of those APs) by the user-authentication root. Created on
# first use, so a CA folder from before it existed gains it then.
CARD_DATA_KEY_FILE = "card-data.key.pem"
_LOCK_FILE = ".lock"
_SERIAL_LOCK_FILE = "serial.lock"
_CA_FILES = (AUTH_KEY_FILE, AUTH_CERT_FILE, SIGN_KEY_FILE, SIGN_CERT_FILE, SERIAL_FILE)


class CAFolderError(ValueError):
    """A CA folder that is missing, incomplete or unreadable; the message names the file."""


def start_of_day(day: date) -> datetime:
    """00:00 JST on ``day``, in UTC (a certificate's notBefore)."""
    return datetime.combine(day, time(0, 0, 0), JST).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """23:59:59 JST on ``day``, in UTC (a certificate's notAfter)."""
    return datetime.combine(day, time(23, 59, 59), JST).astimezone(UTC)


def _ca_name(unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY),
        ]
    )


@dataclass(frozen=True, slots=True)
class _Authority:
    """One root: its key, its certificate, and the certificate's DER."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @classmethod
    def create(cls, unit: str, serial: int) -> _Authority:
        key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
        name = _ca_name(unit)
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(start_of_day(ROOT_NOT_BEFORE))
            .not_valid_after(end_of_day(ROOT_NOT_AFTER))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)


def _new_roots() -> tuple[_Authority, _Authority, int]:
    """Fresh authentication and signing roots and the random serial prefix they share."""
    prefix = secrets.randbits(PREFIX_BITS - 1) | (1 << (PREFIX_BITS - 1))
    # Counter 0 is the roots' own; cards start at 1.
    root_serial = serial_number(prefix, 0, secrets.randbits(RANDOM_BITS))
    return (
        _Authority.create(AUTH_UNIT, root_serial),
        _Authority.create(SIGN_UNIT, root_serial),
        prefix,
    )


def serial_number(prefix: int, counter: int, random: int) -> int:
    """``prefix`` (its low 53 bits, top bit set), ``counter`` and ``random`` packed into one
    positive serial of :data:`SERIAL_PREFIX_BITS` + :data:`COUNTER_BITS` + :data:`RANDOM_BITS`
    bits."""
    top = (prefix % (1 << (SERIAL_PREFIX_BITS - 1))) | (1 << (SERIAL_PREFIX_BITS - 1))
    return (((top << COUNTER_BITS) | counter) << RANDOM_BITS) | random


class _Serials(Protocol):
    prefix: int

    def next_counter(self) -> int: ...


class _MemorySerials:
    """The serial counter of an in-memory CA."""

    def __init__(self, prefix: int) -> None:
        self.prefix = prefix
        self._last = 0
        self._lock = threading.Lock()

    def next_counter(self) -> int:
        with self._lock:
            self._last += 1
            return self._last


class _FolderSerials:
    """The serial counter of a CA folder: read, advance and rewrite under an exclusive flock."""

    def __init__(self, folder: Path, prefix: int) -> None:
        self.prefix = prefix
        self._path = folder / SERIAL_FILE
        self._lock_path = folder / _SERIAL_LOCK_FILE
        self._lock = threading.Lock()

    def next_counter(self) -> int:
        with self._lock, _flocked(self._lock_path):
            state = _read_serial_file(self._path)
            counter = state["last"] + 1
            _write_atomically(
                self._path, json.dumps({"prefix": state["prefix"], "last": counter}).encode()
            )
            return counter


class JlisCA:
    """The two J-LIS roots and the serial counter they share.

    Build one with :meth:`create`, :meth:`load` or :meth:`open`. ``crl_url`` and
    ``sign_crl_url`` are the CRL distribution points written into issued certificates.
    """

    def __init__(
        self, auth: _Authority, sign: _Authority, serials: _Serials, folder: Path | None
    ) -> None:
        self._auth = auth
        self._sign = sign
        self._auth_der = auth.der
        self._sign_der = sign.der
        self._serials = serials
        self.folder = folder
        self.crl_url = DEFAULT_AUTH_CRL_URL
        self.sign_crl_url = DEFAULT_SIGN_CRL_URL
        self._card_data: tuple[rsa.RSAPrivateKey, bytes] | None = None
        self._card_data_lock = threading.Lock()

    # --- the card-data signing key ---------------------------------------------------------

    def _card_data_key(self) -> tuple[rsa.RSAPrivateKey, bytes]:
        with self._card_data_lock:
            if self._card_data is None:
                key = self._load_or_make_card_data_key()
                cert = CvCertificate.issue(self._auth.key, key.public_key()).encode()
                self._card_data = (key, cert)
            return self._card_data

    def _load_or_make_card_data_key(self) -> rsa.RSAPrivateKey:
        if self.folder is None:
            return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
        path = self.folder / CARD_DATA_KEY_FILE
        with _flocked(self.folder / _LOCK_FILE):
            if not path.exists():
                key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
                _write_atomically(
                    path,
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ),
                )
                return key
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise CAFolderError(f"{path} does not hold an RSA key")
        return loaded

    @property
    def card_data_certificate(self) -> bytes:
        """EF 0004 of the card-info and card-face APs: the card-data key, certified by the
        user-authentication root (:attr:`auth_ca_certificate`)."""
        return self._card_data_key()[1]

    def sign_card_data(self, message: bytes) -> bytes:
        """What J-LIS writes onto a card at issuance: ``message`` signed with the card-data key
        (RSA PKCS#1 v1.5, SHA-256)."""
        key = self._card_data_key()[0]
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    @property
    def card_data_public_key(self) -> rsa.RSAPublicKey:
        return self._card_data_key()[0].public_key()

    def signer(self, kind: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """The root that signs ``kind`` ("auth" or "sign") certificates, for CRLs and OCSP."""
        if kind == "auth":
            return self._auth.key, self._auth.certificate
        if kind == "sign":
            return self._sign.key, self._sign.certificate
        raise ValueError(f"kind must be 'auth' or 'sign', got {kind!r}")

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def create(cls, folder: Path | None = None) -> JlisCA:
        """New roots; kept in ``folder`` when given (which must not hold a CA yet)."""
        if folder is None:
            auth, sign, prefix = _new_roots()
            return cls(auth, sign, _MemorySerials(prefix), None)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with _flocked(folder / _LOCK_FILE):
            return cls._create_locked(folder)

    @classmethod
    def _create_locked(cls, folder: Path) -> JlisCA:
        present = [name for name in _CA_FILES if (folder / name).exists()]
        if present:
            raise CAFolderError(
                f"{folder} already holds a CA ({', '.join(present)}); use JlisCA.load or .open"
            )
        auth, sign, prefix = _new_roots()
        for authority, key_file, cert_file in (
            (auth, AUTH_KEY_FILE, AUTH_CERT_FILE),
            (sign, SIGN_KEY_FILE, SIGN_CERT_FILE),
        ):
            key_pem = authority.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_atomically(folder / key_file, key_pem)
            _write_atomically(
                folder / cert_file, authority.certificate.public_bytes(serialization.Encoding.PEM)
            )
        # The serial file goes last: its presence says the folder is complete.
        _write_atomically(folder / SERIAL_FILE, json.dumps({"prefix": prefix, "last": 0}).encode())
        return cls(auth, sign, _FolderSerials(folder, prefix), folder)

    @classmethod
    def load(cls, folder: Path) -> JlisCA:
        """The CA kept in ``folder``; raises :class:`CAFolderError` naming what is wrong."""
        folder = Path(folder)
        missing = [name for name in _CA_FILES if not (folder / name).is_file()]
        if missing:
            raise CAFolderError(f"{folder} is not a complete CA folder: no {', '.join(missing)}")
        auth = _read_authority(folder, AUTH_KEY_FILE, AUTH_CERT_FILE)
        sign = _read_authority(folder, SIGN_KEY_FILE, SIGN_CERT_FILE)
        prefix = _read_serial_file(folder / SERIAL_FILE)["prefix"]
        return cls(auth, sign, _FolderSerials(folder, prefix), folder)

    @classmethod
    def open(cls, folder: Path) -> JlisCA:
        """The CA in ``folder``, created there first when the folder holds none."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with _flocked(folder / _LOCK_FILE):
            if any((folder / name).exists() for name in _CA_FILES):
                return cls.load(folder)
            return cls._create_locked(folder)

    # --- the roots ---------------------------------------------------------------------------

    @property
    def auth_ca_certificate(self) -> bytes:
        """The user-authentication root, DER."""
        return self._auth_der

    @property
    def sign_ca_certificate(self) -> bytes:
        """The digital-signature root, DER."""
        return self._sign_der

    # --- issuance ----------------------------------------------------------------------------

    def issue_auth_certificate(
        self, public_key: rsa.RSAPublicKey, *, not_before: date, not_after: date
    ) -> bytes:
        """A user-authentication certificate (DER) whose subject is an opaque token only.

        No name, address, birth date or My Number: reading it reveals nothing about the holder.
        """
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(16))])
        return self._issue(
            self._auth,
            public_key,
            subject,
            not_before,
            not_after,
            self.crl_url,
            non_repudiation=False,
        )

    def issue_sign_certificate(
        self, public_key: rsa.RSAPublicKey, holder: Holder, *, not_before: date, not_after: date
    ) -> bytes:
        """A digital-signature certificate (DER) naming the holder in its CN (UTF8String)."""
        if not 1 <= len(holder.name) <= MAX_CN_LENGTH:
            raise ValueError(
                f"the holder's name must be 1 to {MAX_CN_LENGTH} characters for the signing "
                f"certificate, not {len(holder.name)}"
            )
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, holder.name)])
        return self._issue(
            self._sign,
            public_key,
            subject,
            not_before,
            not_after,
            self.sign_crl_url,
            non_repudiation=True,
        )

    def _next_serial(self) -> int:
        """A serial number this CA has never handed out before (nor will again), whose low
        :data:`RANDOM_BITS` bits are fresh CSPRNG output (see the module docstring)."""
        counter = self._serials.next_counter()
        if counter >= 1 << COUNTER_BITS:
            raise RuntimeError("the CA's serial counter is exhausted; create a new CA")
        return serial_number(self._serials.prefix, counter, secrets.randbits(RANDOM_BITS))

    def _issue(
        self,
        issuer: _Authority,
        public_key: rsa.RSAPublicKey,
        subject: x509.Name,
        not_before: date,
        not_after: date,
        crl_url: str,
        *,
        non_repudiation: bool,
    ) -> bytes:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise TypeError("JPKI certificates certify RSA keys only")
        if not_after < not_before:
            raise ValueError(f"not_after {not_after} is before not_before {not_before}")
        issuer_ski = issuer.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject)
            .public_key(public_key)
            .serial_number(self._next_serial())
            .not_valid_before(start_of_day(not_before))
            .not_valid_after(end_of_day(not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=non_repudiation,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[
                                x509.UniformResourceIdentifier(crl_url),
                                x509.UniformResourceIdentifier(_ldap_crl_url(issuer)),
                            ],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(_policies(crl_url), critical=False)
            .add_extension(_access(crl_url), critical=False)
            .sign(issuer.key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.DER)


# The real certificates carry a policy, a CPS pointer, OCSP/CA-issuer access and an LDAP CRL
# point beside the HTTP one; readers size their reads by them (~1.6 KB), so these do too.
# The policy OID sits under J-LIS's arc; it is not asserted to be the real certificate's.
EMULATED_POLICY = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")


def _service_base(crl_url: str) -> str:
    return crl_url.split("/v1/", 1)[0]


def _policies(crl_url: str) -> x509.CertificatePolicies:
    notice = (
        "Emulated JPKI user certificate issued by mynahil for testing. It identifies no "
        "person and must never be trusted outside a test harness."
    )
    return x509.CertificatePolicies(
        [
            x509.PolicyInformation(
                EMULATED_POLICY,
                [
                    f"{_service_base(crl_url)}/v1/jlis/cps",
                    x509.UserNotice(notice_reference=None, explicit_text=notice),
                ],
            )
        ]
    )


def _access(crl_url: str) -> x509.AuthorityInformationAccess:
    base = _service_base(crl_url)
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(f"{base}/v1/jlis/ocsp"),
            ),
            x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(f"{base}/v1/jlis/ca"),
            ),
        ]
    )


def _ldap_crl_url(issuer: _Authority) -> str:
    subject = issuer.certificate.subject
    units = ",".join(
        f"ou={a.value!s}" for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    )
    return f"ldap://127.0.0.1/cn=CRL,{units},o=JPKI,c=JP?certificateRevocationList"


# --- storage -----------------------------------------------------------------------------------


def _read_authority(folder: Path, key_file: str, cert_file: str) -> _Authority:
    try:
        key = serialization.load_pem_private_key((folder / key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CAFolderError(f"{folder / key_file}: unreadable key ({exc})") from None
    try:
        certificate = x509.load_pem_x509_certificate((folder / cert_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise CAFolderError(f"{folder / cert_file}: unreadable certificate ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CAFolderError(f"{folder / key_file}: not an RSA key")
    public = certificate.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise CAFolderError(f"{folder / cert_file}: does not match {key_file}")
    return _Authority(key, certificate)


def _read_serial_file(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        raise CAFolderError(f"{path}: unreadable serial counter ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("prefix"), int)
        or not isinstance(data.get("last"), int)
        or data["last"] < 0
    ):
        raise CAFolderError(f"{path}: expected {{'prefix': int, 'last': int}}")
    return {"prefix": data["prefix"], "last": data["last"]}
