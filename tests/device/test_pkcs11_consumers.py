"""More real consumers of the emulated card, through pcscd + vpcd and OpenSC's PKCS#11 module
(``opensc-pkcs11.so``), beside OpenSC's own tools (test_real_clients.py): OpenSSL's pkcs11
engine, GnuTLS's ``p11tool``, PyKCS11, and a TLS client-certificate login with ``curl``.

What OpenSC's JPKI emulation shows them (OpenSC's pkcs15-jpki.c, checked on this card): one
token per PIN, "JPKI (User Authentication PIN)" (4 digits) and "JPKI (Digital Signature PIN)"
(6-16 characters); certificate and key IDs 01 (user authentication), 02 (digital signature,
seen only after the signing password), 03 and 04 (their CA certificates).

Each consumer fails, not skips, when CI=true and its package is missing (``.ci/run`` installs
them: libengine-pkcs11-openssl, gnutls-bin, curl; PyKCS11 comes with the ``test`` extra).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from mynahil.card_emulator import PinSlot, load_card
from mynahil.card_emulator.state import KeyCredential
from mynahil.opensc import find_opensc
from mynahil.tls import make_throwaway_pki
from tests.support import IN_CI, PASSWORD, PIN

pytestmark = pytest.mark.pcsc

AUTH_TOKEN = "JPKI (User Authentication PIN)"
SIGN_TOKEN = "JPKI (Digital Signature PIN)"


def _missing(what: str, package: str) -> None:
    message = f"{what} is not installed (apt-get install {package})"
    if IN_CI:
        pytest.fail(f"CI=true, so {message}", pytrace=False)
    pytest.skip(message)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(name, package)
    assert path is not None
    return path


def uri(token: str, **attributes: str) -> str:
    """An RFC 7512 PKCS#11 URI: ``pkcs11:token=…;id=%01;type=…``."""
    parts = [f"token={quote(token, safe='')}"]
    for name, value in attributes.items():
        parts.append(f"{name.replace('_', '-')}={value}")
    return "pkcs11:" + ";".join(parts)


@pytest.fixture
def module() -> str:
    """OpenSC's PKCS#11 module."""
    found = find_opensc()
    if found is None:
        _missing("OpenSC's PKCS#11 module", "opensc")
    assert found is not None
    return found.module


@pytest.fixture
def openssl_conf(module: str, tmp_path: Path) -> Path:
    """An OpenSSL configuration loading the pkcs11 engine (libp11) over OpenSC's module.

    TLS 1.2 with RSA+SHA256 (PKCS#1 v1.5) for the client's signature: the card pads its
    signatures itself with PKCS#1 v1.5 (JPKI.md), which TLS 1.3 does not allow in a
    CertificateVerify, and RSA-PSS is a mechanism the card does not have."""
    openssl = _tool("openssl", "openssl")
    found = subprocess.run([openssl, "version", "-e"], capture_output=True, text=True, check=True)
    engines = Path(found.stdout.split('"')[1]) if '"' in found.stdout else Path()
    engine = engines / "pkcs11.so"
    if not engine.exists():
        _missing("OpenSSL's pkcs11 engine", "libengine-pkcs11-openssl")
    conf = tmp_path / "openssl.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\nengines = engine_section\nssl_conf = ssl_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n"
        f"[pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {engine}\n"
        f"MODULE_PATH = {module}\ninit = 0\n"
        "[ssl_section]\nsystem_default = tls_defaults\n"
        "[tls_defaults]\nMaxProtocol = TLSv1.2\nSignatureAlgorithms = RSA+SHA256:ECDSA+SHA256\n",
        encoding="utf-8",
    )
    return conf


def _run(
    args: list[str], env: dict[str, str] | None = None, typed: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``args`` without a terminal (a new session): a prompt reads ``typed`` from stdin."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, input=typed or "",
        env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip


def _verifies(certificate: bytes, data: bytes, signature: bytes) -> None:
    key = x509.load_der_x509_certificate(certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def _keys(card_path: Path) -> tuple[KeyCredential, KeyCredential]:
    """The card's (authentication, signing) credentials as its file holds them."""
    state = load_card(card_path)
    assert state.auth is not None
    assert state.sign is not None
    return state.auth, state.sign


# --- (1) OpenSSL through the pkcs11 engine -----------------------------------------------------


def test_openssl_signs_through_the_pkcs11_engine(
    attached: subprocess.Popen[bytes], card_path: Path, openssl_conf: Path, tmp_path: Path
) -> None:
    """`openssl dgst -engine pkcs11`: each key signs after its PIN; each signature verifies
    with the card's certificate for that key."""
    auth, sign = _keys(card_path)
    data = tmp_path / "data"
    data.write_bytes(b"signed by OpenSSL through PKCS#11")
    env = {"OPENSSL_CONF": str(openssl_conf)}
    for token, key_id, secret, certificate in (
        (AUTH_TOKEN, "%01", PIN, auth.certificate),
        (SIGN_TOKEN, "%02", PASSWORD, sign.certificate),
    ):
        key = uri(token, id=key_id, type="private", pin_value=secret)
        signature = tmp_path / f"sig{key_id}"
        # The signing key asks for its password again at each use (OpenSC's module gives the
        # non-repudiation key CKA_ALWAYS_AUTHENTICATE): the engine prompts, stdin answers.
        signed = _run(["openssl", "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine",
                       "-sign", key, "-out", str(signature), str(data)], env,
                      typed=f"{secret}\n")  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        _verifies(certificate, data.read_bytes(), signature.read_bytes())


# --- (2) GnuTLS p11tool ------------------------------------------------------------------------


def _exported(p11tool: str, module: str, object_uri: str) -> bytes:
    result = _run([p11tool, "--provider", module, "--export", object_uri])
    assert result.returncode == 0, result.stderr
    return x509.load_pem_x509_certificate(result.stdout.encode()).public_bytes(Encoding.DER)


def test_p11tool_lists_and_exports_the_certificates(
    attached: subprocess.Popen[bytes], card_path: Path, module: str
) -> None:
    """GnuTLS's `p11tool`: the certificates it lists and exports are the card's, byte for byte;
    the signing certificate appears only after the signing password (JPKI.md, EF 0001)."""
    p11tool = _tool("p11tool", "gnutls-bin")
    auth, sign = _keys(card_path)
    listed = _run([p11tool, "--provider", module, "--list-all-certs", uri(AUTH_TOKEN)])
    assert listed.returncode == 0, listed.stderr
    labels = {line.split(":", 1)[1].strip() for line in listed.stdout.splitlines()
              if line.strip().startswith("Label:")}  # fmt: skip
    assert labels == {"User Authentication Certificate", "User Authentication Certificate CA",
                      "Digital Signature Certificate CA"}  # fmt: skip
    expected = {"%01": auth.certificate, "%03": auth.ca_certificate,
                "%04": sign.ca_certificate}  # fmt: skip
    for object_id, certificate in expected.items():
        exported = _exported(p11tool, module, uri(AUTH_TOKEN, id=object_id, type="cert"))
        assert exported == certificate, object_id
    signing = uri(SIGN_TOKEN, id="%02", type="cert")
    unlisted = _run([p11tool, "--provider", module, "--list-all-certs", uri(SIGN_TOKEN)])
    assert "Digital Signature Certificate\n" not in unlisted.stdout
    after_login = _run([p11tool, "--provider", module, "--login", "--export", signing],
                       {"GNUTLS_PIN": PASSWORD})  # fmt: skip
    assert after_login.returncode == 0, after_login.stderr
    signing_certificate = x509.load_pem_x509_certificate(after_login.stdout.encode())
    assert signing_certificate.public_bytes(Encoding.DER) == sign.certificate


# --- (3) PyKCS11 -------------------------------------------------------------------------------


@pytest.fixture
def pykcs11() -> ModuleType:
    try:
        import PyKCS11
    except ImportError:
        _missing("PyKCS11", "python3-pykcs11, or pip install 'mynahil[test]'")
    return PyKCS11  # type: ignore[no-any-return]


def test_pykcs11_finds_the_key_and_signs(
    attached: subprocess.Popen[bytes], card_path: Path, module: str, pykcs11: ModuleType
) -> None:
    """PyKCS11 on OpenSC's module: the authentication token, its key found by class and ID after
    the PIN, a CKM_SHA256_RSA_PKCS signature that verifies with the card's certificate; a wrong
    PIN is CKR_PIN_INCORRECT and costs the card a try."""
    auth, _ = _keys(card_path)
    p11 = pykcs11
    lib = p11.PyKCS11Lib()
    lib.load(module)
    try:
        slots = {lib.getTokenInfo(s).label.strip(): s for s in lib.getSlotList(tokenPresent=True)}
        assert {AUTH_TOKEN, SIGN_TOKEN} <= set(slots)
        session = lib.openSession(slots[AUTH_TOKEN])
        with pytest.raises(p11.PyKCS11Error) as wrong:
            session.login("0000")
        assert wrong.value.value == p11.CKR_PIN_INCORRECT
        assert load_card(card_path).pins[PinSlot.AUTH].tries_left == 2
        certificates = session.findObjects(
            [(p11.CKA_CLASS, p11.CKO_CERTIFICATE), (p11.CKA_ID, (0x01,))]
        )
        assert len(certificates) == 1
        value = bytes(session.getAttributeValue(certificates[0], [p11.CKA_VALUE])[0])
        assert value == auth.certificate
        session.login(PIN)
        keys = session.findObjects([(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), (p11.CKA_ID, (0x01,))])
        assert len(keys) == 1
        label = session.getAttributeValue(keys[0], [p11.CKA_LABEL])[0]
        assert label == "User Authentication Key"
        data = b"signed by PyKCS11"
        signature = bytes(session.sign(keys[0], data, p11.Mechanism(p11.CKM_SHA256_RSA_PKCS)))
        _verifies(auth.certificate, data, signature)
        assert load_card(card_path).pins[PinSlot.AUTH].tries_left == 3  # the right PIN reset it
        session.logout()
        session.closeSession()
    finally:
        lib.unload()


# --- (4) a TLS client-certificate login with the card ------------------------------------------


@dataclass
class ClientCertServer:
    """A TLS server on 127.0.0.1 that requires a client certificate chaining to ``trusted``
    (TLS 1.2 at most: see ``openssl_conf``); it records the certificate each client showed."""

    trusted: bytes  # the CA certificate, DER
    folder: Path
    port: int = 0
    seen: list[bytes] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pki = make_throwaway_pki(self.folder)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(cadata=self.trusted)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(30)
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    peer = tls.getpeercert(binary_form=True)
                    assert peer is not None
                    self.seen.append(peer)
                    tls.recv(4096)
                    body = x509.load_der_x509_certificate(peer).subject.rfc4514_string().encode()
                    head = f"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {len(body)}"
                    tls.sendall(head.encode() + b"\r\n\r\n" + body)
            except (ssl.SSLError, OSError) as exc:
                self.refused.append(str(exc))
                raw.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.listener.close()


@pytest.fixture
def client_cert_server(card_path: Path, tmp_path: Path) -> Iterator[ClientCertServer]:
    """The server trusts the emulated J-LIS user-authentication CA that issued the card."""
    auth, _ = _keys(card_path)
    server = ClientCertServer(auth.ca_certificate, tmp_path / "server-tls")
    yield server
    server.close()


def test_tls_client_certificate_login_with_the_card(
    attached: subprocess.Popen[bytes],
    card_path: Path,
    openssl_conf: Path,
    client_cert_server: ClientCertServer,
) -> None:
    """`curl` logs in to a TLS server that requires a certificate from the J-LIS CA, with the
    card's authentication certificate and key (PKCS#11 URIs, the pkcs11 engine); the server
    sees the card's certificate. Without the card, the same server refuses the client."""
    curl = _tool("curl", "curl")
    auth, _ = _keys(card_path)
    url = f"https://127.0.0.1:{client_cert_server.port}/"
    trust = ["--cacert", str(client_cert_server.pki.ca_file)]
    env = {"OPENSSL_CONF": str(openssl_conf)}
    without = _run([curl, "-sS", *trust, url], env)
    assert without.returncode != 0
    assert client_cert_server.seen == []
    login = _run(
        [curl, "-sS", *trust, "--engine", "pkcs11",
         "--cert-type", "ENG", "--cert", uri(AUTH_TOKEN, id="%01", type="cert"),
         "--key-type", "ENG", "--key", uri(AUTH_TOKEN, id="%01", type="private", pin_value=PIN),
         url],
        env,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert client_cert_server.seen == [auth.certificate]
    subject = x509.load_der_x509_certificate(auth.certificate).subject.rfc4514_string()
    assert login.stdout == subject
