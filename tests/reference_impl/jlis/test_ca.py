"""The emulated J-LIS CA against JPKI.md "Certificates": names, algorithms, an opaque
authentication subject, extensions, JST validity times, and serials that never repeat."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from datetime import UTC, date, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mynahil.card_emulator.state import Holder, Sex
from mynahil.reference_impl.jlis import CAFolderError, JlisCA, KeyPool

HOLDER = Holder(
    name="山田\u3000太郎",
    address="東京都千代田区千代田1丁目1番1号",
    birth_date=date(1985, 6, 15),
    sex=Sex.MALE,
    my_number="123456789018",
)
ISSUED = date(2024, 5, 1)
NOT_AFTER = date(2028, 6, 15)


def cert(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


@pytest.fixture(scope="module")
def public_key(key_pool: KeyPool) -> rsa.RSAPublicKey:
    return key_pool.keys[0].public_key()


@pytest.fixture(scope="module")
def auth_cert(jlis_ca: JlisCA, public_key: rsa.RSAPublicKey) -> bytes:
    return jlis_ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)


@pytest.fixture(scope="module")
def sign_cert(jlis_ca: JlisCA, public_key: rsa.RSAPublicKey) -> bytes:
    return jlis_ca.issue_sign_certificate(
        public_key, HOLDER, not_before=ISSUED, not_after=NOT_AFTER
    )


# --- the roots ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "unit"),
    [("auth", "JPKI for user authentication"), ("sign", "JPKI for digital signature")],
)
def test_roots_are_self_signed_rsa_2048_sha256(jlis_ca: JlisCA, which: str, unit: str) -> None:
    der = jlis_ca.auth_ca_certificate if which == "auth" else jlis_ca.sign_ca_certificate
    root = cert(der)
    assert root.subject == root.issuer
    assert root.subject.rfc4514_string() == (
        f"OU=Japan Agency for Local Authority Information Systems,OU={unit},O=JPKI,C=JP"
    )
    root.verify_directly_issued_by(root)
    key = root.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert (key.key_size, key.public_numbers().e) == (2048, 65537)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert root.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca


def test_the_two_roots_differ(jlis_ca: JlisCA) -> None:
    assert (
        cert(jlis_ca.auth_ca_certificate).public_key()
        != cert(jlis_ca.sign_ca_certificate).public_key()
    )


# --- the user-authentication certificate --------------------------------------------------------


def test_auth_subject_is_an_opaque_cn_only(auth_cert: bytes) -> None:
    subject = cert(auth_cert).subject
    assert [attribute.oid for attribute in subject] == [NameOID.COMMON_NAME]


def test_auth_certificate_carries_no_personal_data(auth_cert: bytes) -> None:
    personal = [
        HOLDER.name.encode("utf-8"),
        HOLDER.name.encode("utf-16-be"),
        HOLDER.address.encode("utf-8"),
        HOLDER.my_number.encode("ascii"),
        HOLDER.birth_date.strftime("%Y%m%d").encode("ascii"),
        HOLDER.birth_date.isoformat().encode("ascii"),
    ]
    for needle in personal:
        assert needle not in auth_cert


def test_auth_certificate_chains_to_the_auth_root_only(jlis_ca: JlisCA, auth_cert: bytes) -> None:
    leaf = cert(auth_cert)
    leaf.verify_directly_issued_by(cert(jlis_ca.auth_ca_certificate))
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(cert(jlis_ca.sign_ca_certificate))


def test_auth_certificate_extensions(
    jlis_ca: JlisCA, auth_cert: bytes, public_key: rsa.RSAPublicKey
) -> None:
    ext = cert(auth_cert).extensions
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.content_commitment
    assert not usage.value.key_cert_sign
    root_ski = cert(jlis_ca.auth_ca_certificate).extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.value.digest
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public_key)
    points = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0] for p in points] == [
        x509.UniformResourceIdentifier("http://127.0.0.1:8000/v1/jlis/crl/auth")
    ]
    assert points[0].full_name[1].value.startswith("ldap://")
    access = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {d.access_location.value for d in access} == {
        "http://127.0.0.1:8000/v1/jlis/ocsp",
        "http://127.0.0.1:8000/v1/jlis/ca",
    }
    assert ext.get_extension_for_class(x509.CertificatePolicies).value[0].policy_qualifiers


def test_auth_certificate_is_about_as_large_as_the_real_one(auth_cert: bytes) -> None:
    """JPKI.md: the user-authentication certificate is ~1.6 KB; reads are sized by it."""
    assert 1300 <= len(auth_cert) <= 2000


def test_crl_url_is_configurable(public_key: rsa.RSAPublicKey) -> None:
    ca = JlisCA.create()
    ca.crl_url = "http://crl.example.test/auth.crl"
    der = ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
    points = cert(der).extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0] == x509.UniformResourceIdentifier(ca.crl_url)


def test_issued_certificates_are_rsa_sha256(auth_cert: bytes, sign_cert: bytes) -> None:
    for der in (auth_cert, sign_cert):
        leaf = cert(der)
        assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
        key = leaf.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        assert (key.key_size, key.public_numbers().e) == (2048, 65537)


def test_validity_runs_from_midnight_to_23_59_59_jst(auth_cert: bytes) -> None:
    leaf = cert(auth_cert)
    assert leaf.not_valid_before_utc == datetime(2024, 4, 30, 15, 0, 0, tzinfo=UTC)
    assert leaf.not_valid_after_utc == datetime(2028, 6, 15, 14, 59, 59, tzinfo=UTC)


def test_not_after_before_not_before_is_refused(
    jlis_ca: JlisCA, public_key: rsa.RSAPublicKey
) -> None:
    with pytest.raises(ValueError, match="before not_before"):
        jlis_ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=date(2024, 4, 30))


# --- the signing certificate -------------------------------------------------------------------


def test_sign_certificate_names_the_holder_in_utf8(jlis_ca: JlisCA, sign_cert: bytes) -> None:
    leaf = cert(sign_cert)
    leaf.verify_directly_issued_by(cert(jlis_ca.sign_ca_certificate))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOLDER.name
    encoded = HOLDER.name.encode("utf-8")
    assert bytes([0x0C, len(encoded)]) + encoded in sign_cert  # UTF8String tag
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment  # nonRepudiation


def test_overlong_name_is_refused(jlis_ca: JlisCA, public_key: rsa.RSAPublicKey) -> None:
    holder = Holder("長" * 65, HOLDER.address, HOLDER.birth_date, HOLDER.sex, HOLDER.my_number)
    with pytest.raises(ValueError, match="1 to 64 characters"):
        jlis_ca.issue_sign_certificate(public_key, holder, not_before=ISSUED, not_after=NOT_AFTER)


# --- serial numbers ----------------------------------------------------------------------------


def test_serials_are_unique_across_threads(public_key: rsa.RSAPublicKey) -> None:
    ca = JlisCA.create()
    serials: list[int] = []

    def issue() -> None:
        for _ in range(20):
            der = ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
            serials.append(cert(der).serial_number)

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(serials)) == len(serials) == 80


def test_two_cas_never_share_serials(public_key: rsa.RSAPublicKey) -> None:
    first, second = JlisCA.create(), JlisCA.create()
    serial = cert(
        first.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
    ).serial_number
    other = cert(
        second.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
    ).serial_number
    assert serial != other
    assert 0 < serial < 2**159  # fits RFC 5280's 20 octets, positive


def test_serials_are_not_guessable_from_another(
    jlis_ca: JlisCA, public_key: rsa.RSAPublicKey
) -> None:
    """Issue #12 item 1: walking up from one known serial must not find the next card's.

    Each serial carries 64 fresh CSPRNG bits: no two of 40 in a row lie within 2**32 of each
    other, and their low 64 bits neither repeat nor count up.
    """
    serials = [
        cert(
            jlis_ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
        ).serial_number
        for _ in range(40)
    ]
    assert all(0 < s < 2**159 for s in serials)
    ordered = sorted(serials)
    assert all(b - a > 2**32 for a, b in itertools.pairwise(ordered))
    low = [s % 2**64 for s in serials]
    assert len(set(low)) == len(low)
    assert sum(1 for a, b in itertools.pairwise(low) if b > a) < len(low) - 1
    # the top bits of a 64-bit random field are set about half the time, never always clear
    assert any(s.bit_length() > 64 and s % 2**64 >= 2**63 for s in serials)


PER_PROCESS = 50


def _issue_from_folder(
    folder: str, public_pem: bytes, start: Event, results: Queue[list[int]]
) -> None:
    """Runs in a spawned process: issue PER_PROCESS certificates and report their serials."""
    ca = JlisCA.load(Path(folder))
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, rsa.RSAPublicKey)
    start.wait(timeout=60)
    results.put(
        [
            cert(
                ca.issue_auth_certificate(key, not_before=ISSUED, not_after=NOT_AFTER)
            ).serial_number
            for _ in range(PER_PROCESS)
        ]
    )


def test_serials_are_unique_across_processes(tmp_path: Path, public_key: rsa.RSAPublicKey) -> None:
    folder = tmp_path / "ca"
    JlisCA.create(folder)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results: Queue[list[int]] = context.Queue()
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    workers = [
        context.Process(target=_issue_from_folder, args=(str(folder), pem, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    serials = results.get(timeout=120) + results.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(serials) == 2 * PER_PROCESS
    assert len(set(serials)) == len(serials)


# --- the CA folder -----------------------------------------------------------------------------


def test_reloaded_ca_is_the_same_and_keeps_counting(
    jlis_ca: JlisCA, public_key: rsa.RSAPublicKey
) -> None:
    assert jlis_ca.folder is not None
    before = cert(
        jlis_ca.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER)
    ).serial_number
    again = JlisCA.load(jlis_ca.folder)
    assert again.auth_ca_certificate == jlis_ca.auth_ca_certificate
    assert again.sign_ca_certificate == jlis_ca.sign_ca_certificate
    leaf = cert(again.issue_auth_certificate(public_key, not_before=ISSUED, not_after=NOT_AFTER))
    leaf.verify_directly_issued_by(cert(jlis_ca.auth_ca_certificate))
    assert leaf.serial_number > before
    assert JlisCA.open(jlis_ca.folder).auth_ca_certificate == jlis_ca.auth_ca_certificate


def test_open_creates_once(tmp_path: Path) -> None:
    created = JlisCA.open(tmp_path / "ca")
    assert (tmp_path / "ca" / "auth-ca.crt.pem").is_file()
    assert JlisCA.open(tmp_path / "ca").sign_ca_certificate == created.sign_ca_certificate


def test_create_never_overwrites_a_ca(jlis_ca: JlisCA) -> None:
    assert jlis_ca.folder is not None
    with pytest.raises(CAFolderError, match="already holds a CA"):
        JlisCA.create(jlis_ca.folder)
    assert JlisCA.load(jlis_ca.folder).auth_ca_certificate == jlis_ca.auth_ca_certificate


def test_load_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CAFolderError, match=r"no auth-ca\.key\.pem"):
        JlisCA.load(tmp_path)


def test_load_names_a_corrupt_file(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    JlisCA.create(folder)
    (folder / "serial.json").write_text("{")
    with pytest.raises(CAFolderError, match=r"serial\.json"):
        JlisCA.load(folder)
    (folder / "sign-ca.key.pem").write_text("garbage")
    with pytest.raises(CAFolderError, match=r"sign-ca\.key\.pem"):
        JlisCA.load(folder)
