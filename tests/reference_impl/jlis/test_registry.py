"""The J-LIS certificate registry and its services: status, linkage, persistence, CRL, OCSP.

SPEC.md, "Actors": J-LIS revokes certificates and tells relying parties which new certificate
replaced an old one. Everything here runs on real certificates, CRLs and OCSP messages.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mynahil.card_emulator.state import Holder, Sex
from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.jlis.registry import (
    LEGACY_CARD_APPLIED_ON,
    REASONS,
    CardRecord,
    CertificateRegistry,
    JlisServices,
    RegistryFileError,
    RegistryRules,
    UnknownCertificate,
    ocsp_request_for,
)
from mynahil.reference_impl.mykey import CertificateAuthority, CertificateStatus, HolderFacts
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.jlis_sql import SqlRegistry
from tests.support import examples

TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)

Issue = Callable[[str], bytes]


def serial(der: bytes) -> int:
    return int(x509.load_der_x509_certificate(der).serial_number)


def root_public_key(der: bytes) -> rsa.RSAPublicKey:
    public = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return public


@pytest.fixture(scope="module")
def issue(jlis_ca: JlisCA, key_pool: KeyPool) -> Issue:
    """A fresh certificate (DER) of the given kind from the session CA, recorded nowhere."""
    holder = Holder(
        "佐藤\u3000花子", "東京都千代田区千代田1丁目1番1号", date(1980, 4, 1), Sex.FEMALE, ""
    )

    def make(kind: str) -> bytes:
        public = key_pool.new_key().public_key()
        until = TODAY + timedelta(days=365)
        if kind == "auth":
            return jlis_ca.issue_auth_certificate(public, not_before=TODAY, not_after=until)
        return jlis_ca.issue_sign_certificate(public, holder, not_before=TODAY, not_after=until)

    return make


@pytest.fixture(scope="module")
def pool(issue: Issue) -> list[bytes]:
    """Eight authentication certificates, for property tests that record subsets of them."""
    return [issue("auth") for _ in range(8)]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryRules]:
    """One contract, every keeper: in memory (the file's keeper) and in the platform's
    database on both backends."""
    if request.param == "memory":
        yield CertificateRegistry()
        return
    url = (
        f"sqlite:///{tmp_path / 'registry.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with SqlStore.open(url) as store:
        yield SqlRegistry(store.engine)


@pytest.fixture
def services(jlis_ca: JlisCA) -> JlisServices:
    """CRLs and OCSP over a registry in memory: what they read is the contract above."""
    return JlisServices(jlis_ca, CertificateRegistry())


# --- the relying party's interface ---------------------------------------------------------


def test_services_are_what_the_mykey_platform_needs(services: JlisServices, issue: Issue) -> None:
    authority: CertificateAuthority = services  # checked by mypy: the Protocol is satisfied
    assert authority.auth_ca_certificate == services.ca.auth_ca_certificate
    old = issue("auth")
    new = issue("auth")
    services.registry.record(old, "auth", "card-1")
    services.registry.record(new, "auth", "card-1", replaces=serial(old))
    assert authority.status(serial(new)) is CertificateStatus.GOOD
    assert authority.predecessor(serial(new)) == serial(old)
    assert services.successor(serial(old)) == serial(new)
    services.registry.record_card(CardRecord("card-1", "person-1", date(2025, 5, 2), TODAY))
    assert authority.holder_facts(serial(new)) == HolderFacts("person-1", date(2025, 5, 2))
    assert authority.holder_facts(404) is None


# --- cards and the person behind them --------------------------------------------------------


def test_holder_facts_come_from_the_card_record(registry: RegistryRules, issue: Issue) -> None:
    first, renewed, reissued, other = (issue("auth") for _ in range(4))
    registry.record_card(CardRecord("card-1", "alice", date(2021, 4, 20), date(2021, 5, 20)))
    registry.record(first, "auth", "card-1")
    registry.record(renewed, "auth", "card-1", replaces=serial(first))
    registry.record_card(
        CardRecord("card-2", "alice", date(2023, 1, 5), date(2023, 2, 1), replaces="card-1")
    )
    registry.record(reissued, "auth", "card-2", replaces=serial(renewed))
    registry.record_card(CardRecord("card-3", "bob", date(2016, 1, 4), date(2016, 2, 1)))
    registry.record(other, "auth", "card-3")
    assert registry.holder_facts(serial(first)) == HolderFacts("alice", date(2021, 4, 20))
    assert registry.holder_facts(serial(renewed)) == HolderFacts("alice", date(2021, 4, 20))
    assert registry.holder_facts(serial(reissued)) == HolderFacts("alice", date(2023, 1, 5))
    assert registry.holder_facts(serial(other)) == HolderFacts("bob", date(2016, 1, 4))
    assert registry.card("card-2") == CardRecord(
        "card-2", "alice", date(2023, 1, 5), date(2023, 2, 1), replaces="card-1"
    )
    assert registry.card("card-9") is None


def test_card_records_are_checked(registry: RegistryRules) -> None:
    card = CardRecord("card-1", "alice", date(2021, 4, 20), date(2021, 5, 20))
    registry.record_card(card)
    registry.record_card(card)  # the same again: harmless
    with pytest.raises(ValueError, match="already recorded otherwise"):
        registry.record_card(CardRecord("card-1", "bob", date(2021, 4, 20), date(2021, 5, 20)))
    with pytest.raises(ValueError, match="after the issuance date"):
        registry.record_card(CardRecord("card-2", "alice", date(2021, 6, 1), date(2021, 5, 20)))
    with pytest.raises(ValueError, match="not in the registry"):
        registry.record_card(CardRecord("card-2", "alice", TODAY, TODAY, replaces="card-0"))
    with pytest.raises(ValueError, match="another person"):
        registry.record_card(CardRecord("card-2", "bob", TODAY, TODAY, replaces="card-1"))
    registry.record_card(CardRecord("card-2", "alice", TODAY, TODAY, replaces="card-1"))
    with pytest.raises(ValueError, match="already reissued as card-2"):
        registry.record_card(CardRecord("card-3", "alice", TODAY, TODAY, replaces="card-1"))


def test_an_old_registry_file_without_cards_loads_with_the_documented_defaults(
    tmp_path: Path, issue: Issue
) -> None:
    """Files written before card records existed: facts follow the linkage chain's first card."""
    first, renewed, reissued, other = (issue("auth") for _ in range(4))
    old = {
        "format": "mynahil-registry/1",
        "crl_number": 3,
        "certificates": [
            {"serial": str(serial(first)), "kind": "auth", "card_id": "c1",
             "not_after": "2030-01-01T00:00:00+00:00", "replaces": None,
             "revoked_at": None, "reason": None},
            {"serial": str(serial(renewed)), "kind": "auth", "card_id": "c1",
             "not_after": "2030-01-01T00:00:00+00:00", "replaces": str(serial(first)),
             "revoked_at": None, "reason": None},
            {"serial": str(serial(reissued)), "kind": "auth", "card_id": "c2",
             "not_after": "2030-01-01T00:00:00+00:00", "replaces": str(serial(renewed)),
             "revoked_at": None, "reason": None},
            {"serial": str(serial(other)), "kind": "auth", "card_id": "c3",
             "not_after": "2030-01-01T00:00:00+00:00", "replaces": None,
             "revoked_at": None, "reason": None},
        ],
    }  # fmt: skip
    (tmp_path / "registry.json").write_text(json.dumps(old))
    registry = CertificateRegistry(tmp_path)
    assert registry.crl_number == 3
    person = HolderFacts("legacy-c1", LEGACY_CARD_APPLIED_ON)
    assert [registry.holder_facts(serial(d)) for d in (first, renewed, reissued)] == [person] * 3
    assert registry.holder_facts(serial(other)) == HolderFacts("legacy-c3", date(2000, 1, 1))
    # A change rewrites the file with the cards list, which loads again.
    registry.record_card(CardRecord("c4", "dora", date(2025, 5, 1), TODAY))
    again = CertificateRegistry(tmp_path)
    assert again.card("c4") == CardRecord("c4", "dora", date(2025, 5, 1), TODAY)
    assert again.holder_facts(serial(first)) == person


# --- status transitions ------------------------------------------------------------------------


def test_status_goes_from_unknown_to_good_to_revoked(registry: RegistryRules, issue: Issue) -> None:
    der = issue("auth")
    number = serial(der)
    assert registry.status(number) is CertificateStatus.UNKNOWN
    assert registry.record(der, "auth", "card-1") == number
    assert registry.status(number) is CertificateStatus.GOOD
    entry = registry.entry(number)
    assert entry is not None
    assert entry.kind == "auth"
    assert entry.card_id == "card-1"
    assert entry.not_after == x509.load_der_x509_certificate(der).not_valid_after_utc
    assert not entry.revoked
    registry.revoke(number, "lost", NOW)
    assert registry.status(number) is CertificateStatus.REVOKED
    entry = registry.entry(number)
    assert entry is not None
    assert (entry.revoked_at, entry.reason) == (NOW, "lost")


def test_a_revocation_keeps_its_first_reason_and_time(
    registry: RegistryRules, issue: Issue
) -> None:
    number = registry.record(issue("auth"), "auth", "card-1")
    registry.revoke(number, "lost", NOW)
    registry.revoke(number, "superseded", NOW + HOUR)
    entry = registry.entry(number)
    assert entry is not None
    assert (entry.revoked_at, entry.reason) == (NOW, "lost")


def test_revoking_what_was_never_issued_or_for_no_known_reason_is_refused(
    registry: RegistryRules, issue: Issue
) -> None:
    with pytest.raises(UnknownCertificate, match="not issued by this J-LIS"):
        registry.revoke(12345, "lost", NOW)
    with pytest.raises(KeyError):  # UnknownCertificate is a KeyError, as callers expect
        registry.revoke(12345, "lost", NOW)
    number = registry.record(issue("auth"), "auth", "card-1")
    with pytest.raises(ValueError, match="reason must be one of"):
        registry.revoke(number, "bored", NOW)
    with pytest.raises(ValueError, match="time zone"):
        registry.revoke(number, "lost", datetime(2025, 6, 1, 12))
    assert registry.status(number) is CertificateStatus.GOOD


def test_recording_checks_kind_and_linkage(registry: RegistryRules, issue: Issue) -> None:
    auth, sign = issue("auth"), issue("sign")
    with pytest.raises(ValueError, match="kind must be"):
        registry.record(auth, "login", "card-1")
    with pytest.raises(ValueError, match="not in the registry"):
        registry.record(auth, "auth", "card-1", replaces=99)
    registry.record(sign, "sign", "card-1")
    with pytest.raises(ValueError, match="cannot replace"):
        registry.record(auth, "auth", "card-1", replaces=serial(sign))
    assert registry.entries() == [registry.entry(serial(sign))]


def test_an_old_certificate_has_one_successor_only(registry: RegistryRules, issue: Issue) -> None:
    old, first, second = issue("auth"), issue("auth"), issue("auth")
    registry.record(old, "auth", "card-1")
    registry.record(first, "auth", "card-1", replaces=serial(old))
    with pytest.raises(ValueError, match="already replaced"):
        registry.record(second, "auth", "card-2", replaces=serial(old))
    assert registry.successor(serial(old)) == serial(first)
    assert registry.status(serial(second)) is CertificateStatus.UNKNOWN


def test_recording_twice_is_harmless_but_not_with_other_facts(
    registry: RegistryRules, issue: Issue
) -> None:
    der = issue("auth")
    registry.record(der, "auth", "card-1")
    registry.revoke(serial(der), "lost", NOW)
    registry.record(der, "auth", "card-1")
    assert registry.status(serial(der)) is CertificateStatus.REVOKED  # a retry revives nothing
    with pytest.raises(ValueError, match="already recorded"):
        registry.record(der, "auth", "card-2")


def test_predecessor_and_successor_follow_a_chain(registry: RegistryRules, issue: Issue) -> None:
    chain = [issue("auth") for _ in range(3)]
    registry.record(chain[0], "auth", "card-1")
    for old, new in itertools.pairwise(chain):
        registry.record(new, "auth", "card-1", replaces=serial(old))
    numbers = [serial(der) for der in chain]
    assert [registry.predecessor(n) for n in numbers] == [None, numbers[0], numbers[1]]
    assert [registry.successor(n) for n in numbers] == [numbers[1], numbers[2], None]
    assert registry.predecessor(42) is None
    assert registry.successor(42) is None


def _revoke_record_and_fail(registry: RegistryRules, kept: int, extra: bytes) -> None:
    with registry.transaction():
        registry.revoke(kept, "lost", NOW)
        registry.record(extra, "auth", "card-1")
        registry.revoke(777, "lost", NOW)  # fails: nothing above may stick


def test_a_failed_transaction_changes_nothing(registry: RegistryRules, issue: Issue) -> None:
    kept = registry.record(issue("auth"), "auth", "card-1")
    with pytest.raises(UnknownCertificate):
        _revoke_record_and_fail(registry, kept, issue("auth"))
    assert [e.serial for e in registry.entries()] == [kept]
    assert registry.status(kept) is CertificateStatus.GOOD


def test_a_failed_transaction_leaves_the_file_as_it_was(tmp_path: Path, issue: Issue) -> None:
    registry = CertificateRegistry(tmp_path)
    kept = registry.record(issue("auth"), "auth", "card-1")
    with pytest.raises(UnknownCertificate):
        _revoke_record_and_fail(registry, kept, issue("auth"))
    assert CertificateRegistry(tmp_path).entries() == registry.entries()


# --- persistence ----------------------------------------------------------------------------------


def test_a_folder_registry_survives_a_restart(
    tmp_path: Path, jlis_ca: JlisCA, issue: Issue
) -> None:
    folder = tmp_path / "ca"
    registry = CertificateRegistry(folder)
    old, new, sign = issue("auth"), issue("auth"), issue("sign")
    registry.record(old, "auth", "card-1")
    registry.record(sign, "sign", "card-1")
    registry.record(new, "auth", "card-2", replaces=serial(old))
    registry.revoke(serial(old), "superseded", NOW)
    registry.record_card(CardRecord("card-1", "p", date(2025, 4, 1), TODAY))
    registry.record_card(CardRecord("card-2", "p", date(2025, 5, 1), TODAY, replaces="card-1"))
    JlisServices(jlis_ca, registry).crl("auth", now=NOW)

    again = CertificateRegistry(folder)
    assert again.entries() == registry.entries()
    assert again.card("card-2") == registry.card("card-2")
    assert again.holder_facts(serial(new)) == HolderFacts("p", date(2025, 5, 1))
    assert again.status(serial(old)) is CertificateStatus.REVOKED
    assert again.predecessor(serial(new)) == serial(old)
    assert again.successor(serial(old)) == serial(new)
    assert again.crl_number == registry.crl_number == 1
    body = json.loads((folder / "registry.json").read_text(encoding="utf-8"))
    assert body["format"] == "mynahil-registry/1"
    assert {c["serial"] for c in body["certificates"]} == {
        str(serial(d)) for d in (old, new, sign)
    }  # decimal strings: ~100-bit serials survive any JSON reader
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_another_instance_sees_changes_and_writes_do_not_clobber(
    tmp_path: Path, issue: Issue
) -> None:
    """`mynahil card new` and `mynahil serve` share the folder, each with its own registry."""
    certificates = [issue("auth") for _ in range(12)]
    views = [CertificateRegistry(tmp_path), CertificateRegistry(tmp_path)]
    views[0].record(certificates[0], "auth", "card-0")
    assert views[1].status(serial(certificates[0])) is CertificateStatus.GOOD

    def record(view: CertificateRegistry, ders: list[bytes]) -> None:
        for der in ders:
            view.record(der, "auth", "card-x")

    threads = [
        threading.Thread(target=record, args=(views[i], certificates[1 + i :: 2])) for i in (0, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {serial(d) for d in certificates}
    for view in (*views, CertificateRegistry(tmp_path)):
        assert {e.serial for e in view.entries()} == expected


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_the_database_registry_reads_the_file_and_never_writes_it(
    tmp_path: Path, database_url: str, issue: Issue
) -> None:
    """`mynahil card new` records into the CA folder's file; every platform instance reads it
    and keeps what it changes (a revocation, a renewal) in the database, for all to see."""
    desk = CertificateRegistry(tmp_path / "ca")
    lost, kept, renewed, sign = issue("auth"), issue("auth"), issue("auth"), issue("sign")
    desk.record_card(CardRecord("card-1", "alice", date(2021, 4, 20), TODAY))
    desk.record(lost, "auth", "card-1")
    desk.record(sign, "sign", "card-1")
    desk.record(kept, "auth", "card-2")
    desk.revoke(serial(sign), "holder_request", NOW)  # the desk's own revocation counts too
    file_before = (tmp_path / "ca" / "registry.json").read_bytes()
    with SqlStore.open(database_url) as one, SqlStore.open(database_url) as two:
        first = SqlRegistry(one.engine, CertificateRegistry(tmp_path / "ca"))
        second = SqlRegistry(two.engine, CertificateRegistry(tmp_path / "ca"))
        assert first.holder_facts(serial(lost)) == HolderFacts("alice", date(2021, 4, 20))
        assert first.status(serial(kept)) is CertificateStatus.GOOD
        assert second.status(serial(lost)) is CertificateStatus.GOOD  # and remembered there
        first.revoke(serial(lost), "lost", NOW)
        first.record(renewed, "auth", "card-2", replaces=serial(kept))
        for view in (first, second):
            assert view.status(serial(lost)) is CertificateStatus.REVOKED
            assert view.successor(serial(kept)) == serial(renewed)
            assert view.predecessor(serial(renewed)) == serial(kept)
            assert [e.serial for e in view.revoked("auth")] == [serial(lost)]
            assert [e.serial for e in view.revoked("sign")] == [serial(sign)]
            assert {e.serial for e in view.entries()} == {
                serial(d) for d in (lost, kept, renewed, sign)
            }
        with pytest.raises(ValueError, match="already replaced"):
            second.record(issue("auth"), "auth", "card-2", replaces=serial(kept))
        # What the desk records later is seen at once; the file still says what it said.
        late = issue("auth")
        desk.record(late, "auth", "card-3")
        assert second.status(serial(late)) is CertificateStatus.GOOD
        assert first.next_crl_number() == 1
    assert desk.status(serial(lost)) is CertificateStatus.GOOD
    assert (tmp_path / "ca" / "registry.json").read_bytes() != file_before  # the desk's write
    assert CertificateRegistry(tmp_path / "ca").successor(serial(kept)) is None


def test_questions_inside_the_stores_transaction_use_its_connection(
    tmp_path: Path, database_url: str, issue: Issue
) -> None:
    """The platform asks J-LIS in the middle of its unit of work: on the connection the store
    lent it (no checkout from the registry's pool, which could wait for a connection held by
    a request waiting for this one), still seeing a revocation another instance committed."""
    from sqlalchemy import event

    held = issue("auth")
    with SqlStore.open(database_url) as store, SqlStore.open(database_url) as other:
        registry = SqlRegistry(SqlStore.open(database_url, migrate=False).engine)
        elsewhere = SqlRegistry(other.engine)
        store.lend_transactions(registry.reading_on)
        registry.record_card(CardRecord("card-1", "alice", date(2021, 4, 20), TODAY))
        registry.record(held, "auth", "card-1")
        checkouts: list[object] = []
        event.listen(registry._engine, "checkout", lambda *args: checkouts.append(args))
        try:
            with store.transaction():
                assert registry.status(serial(held)) is CertificateStatus.GOOD
                assert registry.holder_facts(serial(held)) == HolderFacts(
                    "alice", date(2021, 4, 20)
                )
            elsewhere.revoke(serial(held), "lost", NOW)
            with store.transaction():
                assert registry.status(serial(held)) is CertificateStatus.REVOKED
            assert checkouts == []
            assert registry.status(serial(held)) is CertificateStatus.REVOKED  # outside: its own
            assert len(checkouts) == 1
        finally:
            registry.dispose()


def test_racing_instances_give_an_old_certificate_one_successor(
    database_url: str, issue: Issue
) -> None:
    """Two platform instances (two engines, two connection pools) renew the same certificate
    at the same moment: one renewal is recorded, the other refused; CRL numbers never repeat."""
    with SqlStore.open(database_url) as one, SqlStore.open(database_url) as two:
        views = [SqlRegistry(one.engine), SqlRegistry(two.engine)]
        for _ in range(4):
            old = views[0].record(issue("auth"), "auth", "card-1")
            renewals = [issue("auth"), issue("auth")]
            start = threading.Barrier(2)
            outcomes: list[str] = []

            def renew(
                view: SqlRegistry, der: bytes, old: int, start: threading.Barrier, said: list[str]
            ) -> None:
                start.wait()
                try:
                    view.record(der, "auth", "card-1", replaces=old)
                    said.append("recorded")
                except ValueError as refused:
                    said.append(str(refused))

            threads = [
                threading.Thread(target=renew, args=(views[i], renewals[i], old, start, outcomes))
                for i in (0, 1)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes)[1] == "recorded", outcomes
            assert "already replaced" in sorted(outcomes)[0], outcomes
            assert views[1].successor(old) in {serial(d) for d in renewals}
        numbers: list[int] = []

        def take(view: SqlRegistry) -> None:
            for _ in range(10):
                numbers.append(view.next_crl_number())

        threads = [threading.Thread(target=take, args=(view,)) for view in views]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(numbers) == list(range(1, 21))


def test_a_corrupt_registry_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text('{"certificates": [{"serial": "1"}]}')
    with pytest.raises(RegistryFileError, match=r"registry\.json"):
        CertificateRegistry(tmp_path)
    (tmp_path / "registry.json").write_text(
        '{"certificates": [], "cards": [{"card_id": "c", "person_ref": "p",'
        ' "applied_on": "2025-06-02", "issued_on": "2025-06-01"}]}'
    )
    with pytest.raises(RegistryFileError, match=r"registry\.json.*applied_on after issued_on"):
        CertificateRegistry(tmp_path)


# --- CRL ------------------------------------------------------------------------------------------


def test_the_crl_is_signed_by_its_root_and_lists_exactly_the_revoked(
    services: JlisServices, issue: Issue
) -> None:
    registry = services.registry
    good, lost, renewed, sign = issue("auth"), issue("auth"), issue("auth"), issue("sign")
    for der in (good, lost, renewed):
        registry.record(der, "auth", "card-1")
    registry.record(sign, "sign", "card-1")
    registry.revoke(serial(lost), "lost", NOW - HOUR)
    registry.revoke(serial(renewed), "superseded", NOW)
    registry.revoke(serial(sign), "lost", NOW)

    crl = x509.load_der_x509_crl(services.crl("auth", now=NOW, next_update=NOW + 6 * HOUR))
    assert crl.is_signature_valid(root_public_key(services.ca.auth_ca_certificate))
    assert not crl.is_signature_valid(root_public_key(services.ca.sign_ca_certificate))
    assert crl.issuer == x509.load_der_x509_certificate(services.ca.auth_ca_certificate).subject
    assert crl.last_update_utc == NOW
    assert crl.next_update_utc == NOW + 6 * HOUR
    listed = {
        r.serial_number: (
            r.revocation_date_utc,
            r.extensions.get_extension_for_class(x509.CRLReason).value.reason,
        )
        for r in crl
    }
    assert listed == {
        serial(lost): (NOW - HOUR, x509.ReasonFlags.key_compromise),
        serial(renewed): (NOW, x509.ReasonFlags.superseded),
    }

    sign_crl = x509.load_der_x509_crl(services.crl("sign", now=NOW))
    assert sign_crl.is_signature_valid(root_public_key(services.ca.sign_ca_certificate))
    assert [r.serial_number for r in sign_crl] == [serial(sign)]
    assert sign_crl.next_update_utc == NOW + timedelta(hours=24)


def test_crl_numbers_increase_with_every_crl(tmp_path: Path, jlis_ca: JlisCA, issue: Issue) -> None:
    def number(crl_der: bytes) -> int:
        crl = x509.load_der_x509_crl(crl_der)
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)

    services = JlisServices(jlis_ca, CertificateRegistry(tmp_path))
    numbers = [number(services.crl(kind, now=NOW)) for kind in ("auth", "auth", "sign")]
    restarted = JlisServices(jlis_ca, CertificateRegistry(tmp_path))
    numbers.append(number(restarted.crl("auth", now=NOW)))
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 4


def test_a_crl_needs_a_known_kind_and_a_future_next_update(services: JlisServices) -> None:
    with pytest.raises(ValueError, match="kind"):
        services.crl("login", now=NOW)
    with pytest.raises(ValueError, match="next_update"):
        services.crl("auth", now=NOW, next_update=NOW)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(sorted(REASONS)))))
def test_the_crl_always_lists_exactly_the_revoked(
    jlis_ca: JlisCA, pool: list[bytes], revocations: list[tuple[int, str]]
) -> None:
    services = JlisServices(jlis_ca, CertificateRegistry())
    for der in pool:
        services.registry.record(der, "auth", "card-1")
    first_reason: dict[int, str] = {}
    for index, reason in revocations:
        services.registry.revoke(serial(pool[index]), reason, NOW)
        first_reason.setdefault(serial(pool[index]), reason)
    crl = x509.load_der_x509_crl(services.crl("auth", now=NOW))
    listed = {
        r.serial_number: r.extensions.get_extension_for_class(x509.CRLReason).value.reason
        for r in crl
    }
    assert listed == {number: REASONS[reason] for number, reason in first_reason.items()}


# --- OCSP -----------------------------------------------------------------------------------------


def answer(services: JlisServices, request: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(services.ocsp_response(request, now=NOW))


def assert_signed_by(response: ocsp.OCSPResponse, root_der: bytes) -> None:
    """The response verifies under the root's key and names that root as its responder."""
    assert response.signature_hash_algorithm is not None
    root_public_key(root_der).verify(
        response.signature,
        response.tbs_response_bytes,
        padding.PKCS1v15(),
        response.signature_hash_algorithm,
    )
    root = x509.load_der_x509_certificate(root_der)
    public = root.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    assert response.responder_key_hash == digest.finalize()


def test_ocsp_answers_good_then_revoked(services: JlisServices, issue: Issue) -> None:
    der = issue("auth")
    services.registry.record(der, "auth", "card-1")
    request = ocsp_request_for(der, services.ca.auth_ca_certificate)

    good = answer(services, request)
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.serial_number == serial(der)
    assert good.this_update_utc == NOW
    assert good.next_update_utc is not None
    assert good.next_update_utc > NOW
    assert_signed_by(good, services.ca.auth_ca_certificate)

    services.registry.revoke(serial(der), "lost", NOW - HOUR)
    revoked = answer(services, request)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == NOW - HOUR
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert_signed_by(revoked, services.ca.auth_ca_certificate)


def test_ocsp_says_unknown_for_what_the_root_never_issued(
    services: JlisServices, issue: Issue
) -> None:
    unrecorded = issue("auth")
    response = answer(services, ocsp_request_for(unrecorded, services.ca.auth_ca_certificate))
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert_signed_by(response, services.ca.auth_ca_certificate)

    # A signing certificate's serial, asked of the authentication root (the CertID reuses
    # that root's hashes from the answer above), is not that root's.
    sign = issue("sign")
    services.registry.record(sign, "sign", "card-1")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            issuer_name_hash=response.issuer_name_hash,
            issuer_key_hash=response.issuer_key_hash,
            serial_number=serial(sign),
            algorithm=hashes.SHA1(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert answer(services, request).certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_for_a_signing_certificate_is_signed_by_the_signing_root(
    services: JlisServices, issue: Issue
) -> None:
    sign = issue("sign")
    services.registry.record(sign, "sign", "card-1")
    response = answer(services, ocsp_request_for(sign, services.ca.sign_ca_certificate))
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert_signed_by(response, services.ca.sign_ca_certificate)


def test_ocsp_echoes_the_nonce_and_accepts_sha256_cert_ids(
    services: JlisServices, issue: Issue
) -> None:
    der = issue("auth")
    services.registry.record(der, "auth", "card-1")
    nonce = bytes(range(16))
    with_nonce = answer(
        services, ocsp_request_for(der, services.ca.auth_ca_certificate, nonce=nonce)
    )
    assert with_nonce.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce

    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(
            x509.load_der_x509_certificate(der),
            x509.load_der_x509_certificate(services.ca.auth_ca_certificate),
            hashes.SHA256(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = answer(services, request)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert isinstance(response.hash_algorithm, hashes.SHA256)


def test_ocsp_refuses_certificates_of_another_ca(services: JlisServices, key_pool: KeyPool) -> None:
    stranger = JlisCA.create()  # same names as J-LIS, other keys
    der = stranger.issue_auth_certificate(
        key_pool.new_key().public_key(), not_before=TODAY, not_after=TODAY
    )
    response = answer(services, ocsp_request_for(der, stranger.auth_ca_certificate))
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def _tlv(tag: int, body: bytes) -> bytes:
    assert len(body) < 256
    length = bytes([len(body)]) if len(body) < 128 else bytes([0x81, len(body)])
    return bytes([tag]) + length + body


def _request_with(cert_ids: list[bytes]) -> bytes:
    """A DER OCSPRequest holding the given CertIDs (hand-built: builders allow only one)."""
    requests = b"".join(_tlv(0x30, cert_id) for cert_id in cert_ids)
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, requests)))


def _cert_id(hash_oid: bytes) -> bytes:
    algorithm = _tlv(0x30, hash_oid + b"\x05\x00")
    return _tlv(0x30, algorithm + _tlv(4, bytes(20)) + _tlv(4, bytes(20)) + _tlv(2, b"\x05"))


SHA1_OID = bytes.fromhex("06052b0e03021a")
MD5_OID = bytes.fromhex("06082a864886f70d0205")


@pytest.mark.parametrize(
    "request_der",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x03junk", id="junk"),
        pytest.param(_request_with([_cert_id(SHA1_OID), _cert_id(SHA1_OID)]), id="two-requests"),
        pytest.param(_request_with([_cert_id(MD5_OID)]), id="unknown-hash"),
    ],
)
def test_a_malformed_ocsp_request_gets_malformed_request(
    services: JlisServices, request_der: bytes
) -> None:
    response = answer(services, request_der)
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_negative_serial_gets_malformed_request(
    services: JlisServices, pool: list[bytes]
) -> None:
    """A CertID naming a J-LIS root but a negative serial (found by the fuzz test below: the
    response builder raised on it)."""
    valid = ocsp.load_der_ocsp_request(ocsp_request_for(pool[0], services.ca.auth_ca_certificate))
    cert_id = _tlv(
        0x30,
        _tlv(0x30, SHA1_OID + b"\x05\x00")
        + _tlv(4, valid.issuer_name_hash)
        + _tlv(4, valid.issuer_key_hash)
        + _tlv(2, b"\x80"),  # -128
    )
    response = answer(services, _request_with([cert_id]))
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_the_hand_built_request_is_otherwise_well_formed(services: JlisServices) -> None:
    """The malformed cases above fail for the reason named, not for a bad DER helper."""
    response = answer(services, _request_with([_cert_id(SHA1_OID)]))
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED  # zero hashes


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_no_ocsp_request_makes_the_responder_raise(
    services: JlisServices, pool: list[bytes], data: st.DataObject
) -> None:
    valid = ocsp_request_for(pool[0], services.ca.auth_ca_certificate)
    request = data.draw(
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda cut, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(valid[:cut])),
                st.integers(0, len(valid)),
                st.dictionaries(st.integers(0, len(valid) - 1), st.integers(1, 255), max_size=3),
            ),
        )
    )
    response = answer(services, request)  # parses: always a well-formed OCSP response
    assert isinstance(response.response_status, ocsp.OCSPResponseStatus)
