"""TLS for the platform's HTTP (seed 004: traffic to the platform is encrypted).

The server side loads a certificate and key (``mynahil serve --tls-cert/--tls-key``); every
client side trusts the CA file it is given (``--ca-file``, or ``$MYNAHIL_CA_FILE``), else the
system's store. A server certificate that does not verify becomes one line naming the problem.
:func:`make_throwaway_pki` makes a CA and a server certificate for 127.0.0.1 and localhost,
for tests and the demo: never for a deployment.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_FILE_ENV",
    "ThrowawayPki",
    "TlsConfigError",
    "check_server_files",
    "client_verify",
    "make_throwaway_pki",
    "tls_failure",
]

CA_FILE_ENV = "MYNAHIL_CA_FILE"


class TlsConfigError(ValueError):
    """A CA file, certificate or key that cannot be used; the message names the option."""


def client_verify(ca_file: Path | str | None = None) -> ssl.SSLContext | bool:
    """What an HTTP client's ``verify`` takes: a context trusting ``ca_file`` (or the file
    ``$MYNAHIL_CA_FILE`` names), else True (the system's trust store).

    Raises TlsConfigError naming the file when it is missing or holds no CA certificate."""
    path = str(ca_file) if ca_file else os.environ.get(CA_FILE_ENV, "")
    if not path:
        return True
    where = f"--ca-file {path}" if ca_file else f"{CA_FILE_ENV}={path}"
    if not Path(path).is_file():
        raise TlsConfigError(f"{where}: no such file")
    try:
        return ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsConfigError(f"{where}: not a PEM CA certificate ({_reason(exc)})") from None


def check_server_files(cert_file: Path | None, key_file: Path | None) -> bool:
    """Whether the server speaks TLS: both files given and usable, or neither given.

    Raises TlsConfigError naming ``--tls-cert``/``--tls-key`` otherwise, before a server
    starts (uvicorn would only log a traceback)."""
    if cert_file is None and key_file is None:
        return False
    if cert_file is None or key_file is None:
        missing = "--tls-cert" if cert_file is None else "--tls-key"
        raise TlsConfigError(f"{missing} is needed too: TLS takes a certificate and its key")
    for option, path in (("--tls-cert", cert_file), ("--tls-key", key_file)):
        if not path.is_file():
            raise TlsConfigError(f"{option} {path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"--tls-cert {cert_file} / --tls-key {key_file}: not a PEM certificate and its "
            f"private key ({_reason(exc)})"
        ) from None
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return str(exc) or type(exc).__name__


def tls_failure(exc: BaseException) -> str | None:
    """One line saying what went wrong when ``exc`` (or what caused it) is a TLS failure:
    a server certificate that did not verify, or a handshake that failed. None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return (
                f"the server's TLS certificate did not verify: {_reason(current)}; give the "
                f"CA that issued it with --ca-file or {CA_FILE_ENV}"
            )
        if isinstance(current, ssl.SSLError):
            hint = ""
            if "WRONG_VERSION_NUMBER" in str(current) or "record layer" in str(current):
                hint = " (does the server speak plain HTTP? then use http://)"
            return f"the TLS handshake failed: {_reason(current)}{hint}"
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True, slots=True)
class ThrowawayPki:
    """A throwaway CA and a server certificate it issued, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mynahil throwaway test CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_throwaway_pki(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 7
) -> ThrowawayPki:
    """A new CA (``ca.pem``) and a server certificate for ``hosts`` (``server.pem``,
    ``server.key``) in ``folder``; ECDSA P-256, valid ``days`` days. For tests and the demo."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("mynahil throwaway CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    pki = ThrowawayPki(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "ca.key"
    )
    pki.ca_file.write_bytes(ca_cert.public_bytes(pem))
    pki.cert_file.write_bytes(cert.public_bytes(pem))
    for path, private in ((pki.key_file, key), (pki.ca_key_file, ca_key)):
        path.write_bytes(private.private_bytes(pem, pkcs8, plain))
        path.chmod(0o600)
    return pki
