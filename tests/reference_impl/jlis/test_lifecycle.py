"""A card's life at J-LIS: issuance, hotline suspension, renewal and reissue.

SPEC.md, "The card and its PIN": certificates run to the 5th birthday after issuance, never past
the card, and a renewed one to the card's own expiry (seed 000); an expired certificate is
reissued at the window (the MyKey ID stays); a lost card is suspended through a hotline and the
reissued card's certificate is linked to the old.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.card_emulator.state import CardState, KeyCredential, PinSlot
from mynahil.reference_impl.jlis import (
    JlisCA,
    KeyPool,
    issue_card,
    lifecycle,
    random_holder,
)
from mynahil.reference_impl.jlis.registry import (
    CertificateRegistry,
    JlisServices,
    UnknownCertificate,
)
from mynahil.reference_impl.jlis.validity import (
    card_expiry,
    certificate_not_after,
    nth_birthday_after,
)
from mynahil.reference_impl.mykey import CertificateStatus, HolderFacts
from mynahil.timezone import JST
from tests.support import examples

TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


def serial(der: bytes) -> int:
    return int(x509.load_der_x509_certificate(der).serial_number)


def cred(state: CardState, kind: str) -> KeyCredential:
    credential = state.auth if kind == "auth" else state.sign
    assert credential is not None
    return credential


def serials(state: CardState) -> dict[str, int]:
    return {kind: serial(cred(state, kind).certificate) for kind in ("auth", "sign")}


def last_valid_day(der: bytes) -> date:
    """The certificate's notAfter as a JST calendar day (23:59:59 JST on that day)."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.astimezone(JST).date()


def holds_its_key(credential: KeyCredential) -> bool:
    public = x509.load_der_x509_certificate(credential.certificate).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return public.public_numbers() == credential.private_key.public_key().public_numbers()


@pytest.fixture
def registry() -> CertificateRegistry:
    return CertificateRegistry()


@pytest.fixture
def card(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> CardState:
    return lifecycle.issue(
        jlis_ca, registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip


# --- issuance ------------------------------------------------------------------------------------


def test_issue_records_both_certificates_under_the_card_id(
    registry: CertificateRegistry, card: CardState
) -> None:
    assert card.label
    for kind, number in serials(card).items():
        entry = registry.entry(number)
        assert entry is not None
        assert (entry.kind, entry.card_id, entry.replaces) == (kind, card.label, None)
        assert (
            entry.not_after
            == x509.load_der_x509_certificate(cred(card, kind).certificate).not_valid_after_utc
        )
        assert registry.status(number) is CertificateStatus.GOOD


def test_many_cards_are_recorded_in_one_registry_write(
    jlis_ca: JlisCA, key_pool: KeyPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak, the load test and the HIL issue their cards in one registry transaction: the
    file is written once (a serving platform re-reads it once), with every card in it."""
    registry = CertificateRegistry(tmp_path / "jlis")
    writes: list[int] = []
    save = registry._save

    def counted_save() -> None:
        writes.append(1)
        save()

    monkeypatch.setattr(registry, "_save", counted_save)
    states = lifecycle.issue_many(
        jlis_ca, registry, 3, holders=random.Random(3), issued_on=TODAY, keys=key_pool
    )
    assert len(writes) == 1
    assert len({state.label for state in states}) == 3
    reread = CertificateRegistry(tmp_path / "jlis")
    assert all(reread.card(state.label) is not None for state in states)
    assert len({state.holder.my_number for state in states}) == 3  # three people


def test_a_card_without_certificates_records_nothing(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    declined = lifecycle.issue(
        jlis_ca, registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool, with_certificates=False,
    )  # fmt: skip
    assert declined.auth is None
    assert registry.entries() == []


# --- suspension ----------------------------------------------------------------------------------


def test_suspension_revokes_both_certificates_as_lost(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState
) -> None:
    revoked = lifecycle.suspend(registry, card, at=NOW)
    assert sorted(revoked) == sorted(serials(card).values())
    for number in serials(card).values():
        entry = registry.entry(number)
        assert entry is not None
        assert (entry.reason, entry.revoked_at) == ("lost", NOW)
        assert registry.status(number) is CertificateStatus.REVOKED
    crl = x509.load_der_x509_crl(JlisServices(jlis_ca, registry).crl("auth", now=NOW))
    assert [r.serial_number for r in crl] == [serials(card)["auth"]]


def test_suspension_by_serials_is_all_or_nothing(
    registry: CertificateRegistry, card: CardState
) -> None:
    auth = serials(card)["auth"]
    with pytest.raises(UnknownCertificate):
        lifecycle.suspend(registry, [auth, 404], at=NOW)
    assert registry.status(auth) is CertificateStatus.GOOD
    lifecycle.suspend(registry, [auth], at=NOW, reason="holder_request")
    assert registry.status(auth) is CertificateStatus.REVOKED
    assert registry.status(serials(card)["sign"]) is CertificateStatus.GOOD


# --- renewal -------------------------------------------------------------------------------------


def test_renewal_keeps_the_card_and_links_new_certificates_to_old(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    on = TODAY + timedelta(days=400)
    renewed = lifecycle.renew(jlis_ca, registry, card, on=on, keys=key_pool)
    assert (renewed.holder, renewed.pins, renewed.label) == (card.holder, card.pins, card.label)
    assert (renewed.card_expires, renewed.atr_profile) == (card.card_expires, card.atr_profile)
    old, new = serials(card), serials(renewed)
    for kind in ("auth", "sign"):
        assert new[kind] != old[kind]
        assert holds_its_key(cred(renewed, kind))
        assert registry.predecessor(new[kind]) == old[kind]
        assert registry.successor(old[kind]) == new[kind]
        assert registry.status(new[kind]) is CertificateStatus.GOOD
        assert registry.status(old[kind]) is CertificateStatus.REVOKED
        old_entry, new_entry = registry.entry(old[kind]), registry.entry(new[kind])
        assert old_entry is not None
        assert new_entry is not None
        assert old_entry.reason == "superseded"
        assert new_entry.card_id == card.label
    assert cred(renewed, "auth").ca_certificate == jlis_ca.auth_ca_certificate
    assert cred(renewed, "sign").ca_certificate == jlis_ca.sign_ca_certificate
    # Renewed a year in, well before the 5th birthday after renewal: still to the card's own
    # expiry (SPEC, seed 000), not to that birthday.
    assert nth_birthday_after(card.holder.birth_date, on, 5) < card.card_expires
    assert last_valid_day(cred(renewed, "auth").certificate) == card.card_expires
    assert last_valid_day(cred(renewed, "sign").certificate) == card.card_expires


def test_renewal_makes_new_key_pairs(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState
) -> None:
    renewed = lifecycle.renew(jlis_ca, registry, card, on=TODAY)  # fresh keys, like a card
    for kind in ("auth", "sign"):
        new_key = cred(renewed, kind).private_key.public_key().public_numbers()
        assert new_key != cred(card, kind).private_key.public_key().public_numbers()
        assert holds_its_key(cred(renewed, kind))


class Stutter:
    """A key source that hands out each of its keys twice in a row (as a pool may)."""

    def __init__(self, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
        self._keys = [key for key in keys for _ in range(2)]

    def new_key(self) -> rsa.RSAPrivateKey:
        return self._keys.pop(0)


def test_renewal_never_gives_both_applets_the_same_key(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    renewed = lifecycle.renew(jlis_ca, registry, card, on=TODAY, keys=Stutter(key_pool.keys))
    assert cred(renewed, "auth").private_key is not cred(renewed, "sign").private_key


def test_an_expired_certificate_renewed_late_in_the_cards_life_stops_with_the_card(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    on = card.card_expires - timedelta(days=700)  # the old certificate has long expired
    assert last_valid_day(cred(card, "auth").certificate) < on
    renewed = lifecycle.renew(jlis_ca, registry, card, on=on, keys=key_pool)
    assert nth_birthday_after(card.holder.birth_date, on, 5) > card.card_expires
    assert last_valid_day(cred(renewed, "auth").certificate) == card.card_expires
    assert last_valid_day(cred(renewed, "sign").certificate) == card.card_expires


def test_predecessors_chain_back_across_two_renewals(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    once = lifecycle.renew(jlis_ca, registry, card, on=TODAY + timedelta(days=30), keys=key_pool)
    twice = lifecycle.renew(jlis_ca, registry, once, on=TODAY + timedelta(days=60), keys=key_pool)
    for kind in ("auth", "sign"):
        chain = [serials(twice)[kind]]
        while (previous := registry.predecessor(chain[-1])) is not None:
            chain.append(previous)
        assert chain == [serials(s)[kind] for s in (twice, once, card)]
        forward = [serials(card)[kind]]
        while (following := registry.successor(forward[-1])) is not None:
            forward.append(following)
        assert forward == chain[::-1]
    assert registry.status(serials(once)["auth"]) is CertificateStatus.REVOKED
    assert registry.status(serials(twice)["auth"]) is CertificateStatus.GOOD


def test_a_lost_and_found_card_can_be_renewed_and_keeps_its_loss_on_record(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    lifecycle.suspend(registry, card, at=NOW)
    renewed = lifecycle.renew(jlis_ca, registry, card, on=TODAY, keys=key_pool)
    old = registry.entry(serials(card)["auth"])
    assert old is not None
    assert old.reason == "lost"
    assert registry.predecessor(serials(renewed)["auth"]) == serials(card)["auth"]


def test_renewal_refuses_a_stale_card_state_and_changes_nothing(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    lifecycle.renew(jlis_ca, registry, card, on=TODAY, keys=key_pool)
    before = registry.entries()
    with pytest.raises(ValueError, match="already replaced"):
        lifecycle.renew(jlis_ca, registry, card, on=TODAY, keys=key_pool)
    with pytest.raises(ValueError, match="already replaced"):
        lifecycle.reissue(
            jlis_ca, registry, card, on=TODAY, pin=PIN, password=PASSWORD, keys=key_pool
        )
    assert registry.entries() == before


def test_renewal_refuses_an_expired_card(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    with pytest.raises(ValueError, match="card itself expired"):
        lifecycle.renew(
            jlis_ca, registry, card, on=card.card_expires + timedelta(days=1), keys=key_pool
        )


def test_a_card_the_registry_never_saw_cannot_be_linked(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    unrecorded = issue_card(
        jlis_ca, random_holder(rng), pin=PIN, password=PASSWORD, issued_on=TODAY, keys=key_pool
    )
    with pytest.raises(ValueError, match="not in this registry"):
        lifecycle.renew(jlis_ca, registry, unrecorded, on=TODAY, keys=key_pool)


def test_a_card_whose_holder_declined_certificates_cannot_be_renewed_or_reissued(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    declined = lifecycle.issue(
        jlis_ca, registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool, with_certificates=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="declined"):
        lifecycle.renew(jlis_ca, registry, declined, on=TODAY, keys=key_pool)
    with pytest.raises(ValueError, match="declined"):
        lifecycle.reissue(
            jlis_ca, registry, declined, on=TODAY, pin=PIN, password=PASSWORD, keys=key_pool
        )
    assert registry.entries() == []


@settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    birth=st.dates(date(1940, 1, 1), date(2004, 12, 31)),
    years=st.integers(0, 9),
    days=st.integers(0, 364),
)
def test_renewed_certificates_last_to_the_cards_own_expiry(
    jlis_ca: JlisCA, key_pool: KeyPool, birth: date, years: int, days: int
) -> None:
    """SPEC and seed 000: a renewed certificate is valid until the card expires, whenever in
    the card's life it was renewed (not to the 5th birthday after the renewal)."""
    registry = CertificateRegistry()
    holder = random_holder(random.Random(0), birth_date=birth)
    issued = date(2021, 4, 1)
    state = lifecycle.issue(
        jlis_ca, registry, holder, pin=PIN, password=PASSWORD, issued_on=issued, keys=key_pool
    )
    on = min(issued + timedelta(days=365 * years + days), state.card_expires)
    renewed = lifecycle.renew(jlis_ca, registry, state, on=on, keys=key_pool)
    assert last_valid_day(cred(renewed, "auth").certificate) == state.card_expires
    if renewed.sign is not None:
        assert last_valid_day(renewed.sign.certificate) == state.card_expires


# --- reissue -------------------------------------------------------------------------------------


def test_reissue_after_loss_links_the_new_card_and_keeps_the_loss(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    lifecycle.suspend(registry, card, at=NOW)
    on = TODAY + timedelta(days=20)
    new = lifecycle.reissue(
        jlis_ca, registry, card, on=on, pin="5678", password="NEW123", keys=key_pool
    )
    assert new.holder == card.holder
    assert new.label
    assert new.label != card.label
    assert new.card_expires == card_expiry(card.holder.birth_date, on)
    assert new.pins[PinSlot.AUTH].matches(b"5678")
    assert new.pins[PinSlot.SIGN].matches(b"NEW123")
    for kind in ("auth", "sign"):
        old_serial, new_serial = serials(card)[kind], serials(new)[kind]
        assert registry.predecessor(new_serial) == old_serial
        assert registry.successor(old_serial) == new_serial
        assert registry.status(new_serial) is CertificateStatus.GOOD
        old_entry, new_entry = registry.entry(old_serial), registry.entry(new_serial)
        assert old_entry is not None
        assert new_entry is not None
        assert (old_entry.reason, old_entry.revoked_at) == ("lost", NOW)
        assert new_entry.card_id == new.label
        assert last_valid_day(cred(new, kind).certificate) == certificate_not_after(
            card.holder.birth_date, on, new.card_expires
        )


def test_reissue_without_suspension_supersedes_the_old_card(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    new = lifecycle.reissue(
        jlis_ca, registry, card, on=TODAY, pin=PIN, password=PASSWORD, keys=key_pool
    )
    for kind in ("auth", "sign"):
        old = registry.entry(serials(card)[kind])
        assert old is not None
        assert old.reason == "superseded"
        assert registry.predecessor(serials(new)[kind]) == serials(card)[kind]


# --- all of it, through a CA folder ------------------------------------------------------------


def test_a_cards_whole_life_survives_a_restart(
    tmp_path: Path, key_pool: KeyPool, rng: random.Random
) -> None:
    folder = tmp_path / "ca"
    ca = JlisCA.create(folder)
    registry = CertificateRegistry(folder)
    first = lifecycle.issue(
        ca, registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip
    renewed = lifecycle.renew(ca, registry, first, on=TODAY + timedelta(days=10), keys=key_pool)
    lifecycle.suspend(registry, renewed, at=NOW + timedelta(days=20))
    reissued = lifecycle.reissue(
        ca, registry, renewed, on=TODAY + timedelta(days=30), pin=PIN, password=PASSWORD,
        keys=key_pool,
    )  # fmt: skip

    services = JlisServices(JlisCA.load(folder), CertificateRegistry(folder))
    auth = [serials(s)["auth"] for s in (first, renewed, reissued)]
    assert services.predecessor(auth[2]) == auth[1]
    assert services.predecessor(auth[1]) == auth[0]
    assert [services.status(n) for n in auth] == [
        CertificateStatus.REVOKED,
        CertificateStatus.REVOKED,
        CertificateStatus.GOOD,
    ]
    crl = x509.load_der_x509_crl(services.crl("auth", now=NOW + timedelta(days=31)))
    reasons = {
        r.serial_number: r.extensions.get_extension_for_class(x509.CRLReason).value.reason
        for r in crl
    }
    assert reasons == {
        auth[0]: x509.ReasonFlags.superseded,
        auth[1]: x509.ReasonFlags.key_compromise,
    }


# --- the card record: application date and the person -----------------------------------------


def test_issue_records_the_card_its_application_date_and_a_new_person(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    holder = random_holder(rng)
    applied = date(2021, 4, 20)
    state = lifecycle.issue(
        jlis_ca, registry, holder, pin=PIN, password=PASSWORD, issued_on=date(2021, 5, 20),
        applied_on=applied, keys=key_pool,
    )  # fmt: skip
    card_record = registry.card(state.label)
    assert card_record is not None
    assert (card_record.applied_on, card_record.issued_on) == (applied, date(2021, 5, 20))
    assert card_record.replaces is None
    for number in serials(state).values():
        assert registry.holder_facts(number) == HolderFacts(card_record.person_ref, applied)
    assert holder.my_number not in card_record.person_ref
    assert len(card_record.person_ref) == 32
    other = lifecycle.issue(
        jlis_ca, registry, holder, pin=PIN, password=PASSWORD, issued_on=TODAY, keys=key_pool
    )
    other_record = registry.card(other.label)
    assert other_record is not None
    assert other_record.applied_on == TODAY - timedelta(days=30)  # the default: a month before
    # A first card always draws a new person (J-LIS links people by reissue, not by data).
    assert other_record.person_ref != card_record.person_ref


def test_an_application_after_issuance_is_refused_and_nothing_is_recorded(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    with pytest.raises(ValueError, match="card-application date 2025-06-02 is after"):
        lifecycle.issue(
            jlis_ca, registry, random_holder(rng), pin=PIN, password=PASSWORD, issued_on=TODAY,
            applied_on=TODAY + timedelta(days=1), keys=key_pool,
        )  # fmt: skip
    assert registry.entries() == []


def test_renewal_and_reissue_keep_the_person(
    jlis_ca: JlisCA, registry: CertificateRegistry, card: CardState, key_pool: KeyPool
) -> None:
    first = registry.holder_facts(serials(card)["auth"])
    assert first is not None
    renewed = lifecycle.renew(jlis_ca, registry, card, on=TODAY + timedelta(days=40), keys=key_pool)
    for number in serials(renewed).values():
        assert registry.holder_facts(number) == first  # same card: same application date
    lifecycle.suspend(registry, renewed, at=NOW + timedelta(days=50))
    reissued = lifecycle.reissue(
        jlis_ca, registry, renewed, on=TODAY + timedelta(days=90), pin=PIN, password=PASSWORD,
        applied_on=TODAY + timedelta(days=55), keys=key_pool,
    )  # fmt: skip
    for number in serials(reissued).values():
        assert registry.holder_facts(number) == HolderFacts(
            first.person_ref, TODAY + timedelta(days=55)
        )
    record = registry.card(reissued.label)
    assert record is not None
    assert record.replaces == card.label


def test_a_minor_under_15_gets_no_signing_certificate_and_renews_into_one_at_15(
    jlis_ca: JlisCA, registry: CertificateRegistry, key_pool: KeyPool, rng: random.Random
) -> None:
    child = random_holder(rng, birth_date=date(2012, 3, 1))
    state = lifecycle.issue(
        jlis_ca, registry, child, pin=PIN, password=PASSWORD, issued_on=TODAY, keys=key_pool
    )
    assert state.auth is not None
    assert state.sign is None
    assert [e.kind for e in registry.entries()] == ["auth"]
    still_14 = lifecycle.renew(jlis_ca, registry, state, on=date(2027, 2, 28), keys=key_pool)
    assert still_14.sign is None
    at_15 = lifecycle.renew(jlis_ca, registry, still_14, on=date(2027, 3, 1), keys=key_pool)
    assert at_15.sign is not None
    assert registry.predecessor(serial(cred(at_15, "sign").certificate)) is None
    again = lifecycle.reissue(
        jlis_ca, registry, at_15, on=date(2027, 6, 1), pin=PIN, password=PASSWORD, keys=key_pool
    )
    assert registry.predecessor(serial(cred(again, "sign").certificate)) == serial(
        cred(at_15, "sign").certificate
    )


@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(["renew", "reissue"]), st.integers(0, 1)), max_size=6)
)
def test_the_person_is_the_same_along_any_chain_of_renewals_and_reissues(
    jlis_ca: JlisCA, key_pool: KeyPool, steps: list[tuple[str, int]]
) -> None:
    """Two people; whatever renewals and reissues happen, every certificate of one person's
    chain names that person, never the other, and the application date of its own card."""
    registry = CertificateRegistry()
    rng = random.Random(5)
    cards = [
        lifecycle.issue(
            jlis_ca,
            registry,
            random_holder(rng),
            pin=PIN,
            password=PASSWORD,
            issued_on=TODAY,
            applied_on=TODAY - timedelta(days=20 + who),
            keys=key_pool,
        )
        for who in (0, 1)
    ]
    people = []
    for state in cards:
        facts = registry.holder_facts(serials(state)["auth"])
        assert facts is not None
        people.append(facts.person_ref)
    assert people[0] != people[1]
    applied = [TODAY - timedelta(days=20), TODAY - timedelta(days=21)]
    day = TODAY
    for step, who in steps:
        day += timedelta(days=30)
        if step == "renew":
            cards[who] = lifecycle.renew(jlis_ca, registry, cards[who], on=day, keys=key_pool)
        else:
            applied[who] = day - timedelta(days=10)
            cards[who] = lifecycle.reissue(
                jlis_ca, registry, cards[who], on=day, pin=PIN, password=PASSWORD,
                applied_on=applied[who], keys=key_pool,
            )  # fmt: skip
        for person in (0, 1):
            for number in serials(cards[person]).values():
                assert registry.holder_facts(number) == HolderFacts(people[person], applied[person])
                chain = number
                while (chain_prev := registry.predecessor(chain)) is not None:
                    chain = chain_prev
                    facts = registry.holder_facts(chain)
                    assert facts is not None
                    assert facts.person_ref == people[person]


def test_a_card_from_an_old_registry_file_is_reissued_to_the_same_legacy_person(
    tmp_path: Path, key_pool: KeyPool, rng: random.Random
) -> None:
    """A registry written before card records existed: the reissued card carries the legacy
    person reference the old card is reported with."""
    import json

    folder = tmp_path / "ca"
    ca = JlisCA.create(folder)
    old = lifecycle.issue(
        ca, CertificateRegistry(folder), random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip
    path = folder / "registry.json"
    body = json.loads(path.read_text())
    del body["cards"]
    path.write_text(json.dumps(body))
    registry = CertificateRegistry(folder)
    legacy = HolderFacts(f"legacy-{old.label}", date(2000, 1, 1))
    assert registry.holder_facts(serials(old)["auth"]) == legacy
    new = lifecycle.reissue(
        ca, registry, old, on=TODAY + timedelta(days=60), pin=PIN, password=PASSWORD,
        applied_on=TODAY + timedelta(days=30), keys=key_pool,
    )  # fmt: skip
    for number in serials(new).values():
        assert CertificateRegistry(folder).holder_facts(number) == HolderFacts(
            legacy.person_ref, TODAY + timedelta(days=30)
        )
    record = registry.card(new.label)
    assert record is not None
    assert record.replaces is None  # the old card has no record to point at
