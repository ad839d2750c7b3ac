"""Issuing a card at the municipal window (SPEC.md "The card and its PIN")."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

import mynahil.reference_impl.jlis
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.card_emulator.state import CardState, Holder, PinSlot, Sex
from mynahil.jpki import valid_my_number
from mynahil.reference_impl.jlis import JlisCA, KeyPool, issue_card, random_holder

PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD
ADULT_BIRTH = date(1985, 6, 15)
ISSUED = date(2024, 5, 1)


def cert(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def issue(
    ca: JlisCA,
    holder: Holder,
    pool: KeyPool,
    *,
    issued_on: date = ISSUED,
    card_info_pin: str | None = None,
    with_certificates: bool = True,
    atr_profile: str = "contact",
    label: str = "",
) -> CardState:
    """The window's form with this module's PIN and password, keys from ``pool``."""
    return issue_card(
        ca,
        holder,
        pin=PIN,
        password=PASSWORD,
        issued_on=issued_on,
        card_info_pin=card_info_pin,
        with_certificates=with_certificates,
        keys=pool,
        atr_profile=atr_profile,
        label=label,
    )


@pytest.fixture
def adult(rng: random.Random) -> Holder:
    return random_holder(rng, birth_date=ADULT_BIRTH)


def test_public_surface() -> None:
    assert sorted(mynahil.reference_impl.jlis.__all__) == [
        "CAFolderError",
        "CardRecord",
        "CertificateRegistry",
        "FreshKeys",
        "JlisCA",
        "JlisServices",
        "KeyPool",
        "KeySource",
        "age_of_majority",
        "age_on",
        "card_expiry",
        "certificate_not_after",
        "default_applied_on",
        "is_minor",
        "issue_card",
        "lifecycle",
        "minor_for_the_card",
        "nth_birthday_after",
        "ocsp_request_for",
        "random_holder",
        "sign_card_data",
        "signing_certificate_allowed",
    ]


def test_card_carries_both_certified_keys(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder
) -> None:
    state = issue(jlis_ca, adult, key_pool, atr_profile="contactless", label="taro")
    assert state.auth is not None
    assert state.sign is not None
    assert state.auth.private_key is not state.sign.private_key
    for credential, root in (
        (state.auth, jlis_ca.auth_ca_certificate),
        (state.sign, jlis_ca.sign_ca_certificate),
    ):
        assert credential.ca_certificate == root
        leaf = cert(credential.certificate)
        leaf.verify_directly_issued_by(cert(root))
        assert leaf.public_key() == credential.private_key.public_key()
    assert (state.holder, state.atr_profile, state.label) == (adult, "contactless", "taro")


def test_auth_certificate_on_the_card_hides_the_holder(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder
) -> None:
    state = issue(jlis_ca, adult, key_pool)
    assert state.auth is not None
    for needle in (adult.name, adult.address, adult.my_number, adult.birth_date.strftime("%Y%m%d")):
        assert needle.encode("utf-8") not in state.auth.certificate
    assert state.sign is not None
    assert adult.name.encode("utf-8") in state.sign.certificate


def test_pins_are_set_from_the_form(jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder) -> None:
    state = issue(jlis_ca, adult, key_pool)
    assert state.pins[PinSlot.AUTH].matches(PIN.encode())
    assert state.pins[PinSlot.SIGN].matches(PASSWORD.encode())
    assert state.pins[PinSlot.CARD_INFO].matches(PIN.encode())  # defaults to the PIN
    assert state.pins[PinSlot.AUTH].tries_left == 3
    assert state.pins[PinSlot.SIGN].tries_left == 5
    other = issue(jlis_ca, adult, key_pool, card_info_pin="9876")
    assert other.pins[PinSlot.CARD_INFO].matches(b"9876")
    assert not other.pins[PinSlot.CARD_INFO].matches(PIN.encode())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pin", "12345", "user-authentication PIN is exactly 4"),
        ("password", "abc123", "signing password may not contain"),
        ("password", "AB1", "signing password is 6 to 16"),
        ("card_info_pin", "12a4", "card-info PIN may not contain"),
    ],
)
def test_bad_pins_are_refused_with_the_policy_message(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder, field: str, value: str, message: str
) -> None:
    form = {"pin": PIN, "password": PASSWORD, "card_info_pin": PIN, field: value}
    with pytest.raises(ValueError, match=message):
        issue_card(
            jlis_ca,
            adult,
            pin=form["pin"],
            password=form["password"],
            card_info_pin=form["card_info_pin"],
            issued_on=ISSUED,
            keys=key_pool,
        )


def test_invalid_my_number_is_refused(jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder) -> None:
    wrong = adult.my_number[:11] + str((int(adult.my_number[11]) + 1) % 10)
    holder = Holder(adult.name, adult.address, adult.birth_date, adult.sex, wrong)
    with pytest.raises(ValueError, match="is not a valid My Number"):
        issue(jlis_ca, holder, key_pool)


def test_holder_born_after_issuance_is_refused(
    jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    with pytest.raises(ValueError, match="after the issuance date"):
        issue(jlis_ca, random_holder(rng, birth_date=date(2024, 5, 2)), key_pool)


def test_declined_card_has_no_credentials(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder
) -> None:
    state = issue(jlis_ca, adult, key_pool, with_certificates=False)
    assert state.auth is None
    assert state.sign is None
    assert state.pins[PinSlot.AUTH].matches(PIN.encode())
    assert state.card_expires == date(2033, 6, 15)


def test_adult_card_outlives_its_certificates(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder
) -> None:
    state = issue(jlis_ca, adult, key_pool)
    assert state.card_expires == date(2033, 6, 15)  # 10th birthday after issuance
    for credential in (state.auth, state.sign):
        assert credential is not None
        assert cert(credential.certificate).not_valid_after_utc.date() == date(2028, 6, 15)


def test_minor_card_expires_with_its_certificates(
    jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    state = issue(jlis_ca, random_holder(rng, birth_date=date(2010, 1, 10)), key_pool)
    assert state.card_expires == date(2029, 1, 10)  # 5th birthday after issuance
    assert state.auth is not None
    not_after = cert(state.auth.certificate).not_valid_after_utc
    assert not_after == datetime(2029, 1, 10, 14, 59, 59, tzinfo=UTC)  # 23:59:59 JST


def test_card_issued_six_years_ago_has_expired_certificates(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder
) -> None:
    today = date.today()
    state = issue(jlis_ca, adult, key_pool, issued_on=date(today.year - 6, today.month, 1))
    now = datetime.now(UTC)
    for credential in (state.auth, state.sign):
        assert credential is not None
        assert cert(credential.certificate).not_valid_after_utc < now
    assert state.card_expires > today  # the card itself still runs to its 10th birthday


def test_pooled_cards_share_keys_but_never_serials(
    jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    cards = [issue(jlis_ca, random_holder(rng), key_pool) for _ in range(6)]
    keys = [c.auth.private_key for c in cards if c.auth is not None]
    assert all(key in key_pool.keys for key in keys)
    assert len({id(key) for key in keys}) < len(keys)  # 6 cards from 4 keys
    serials = [
        cert(credential.certificate).serial_number
        for c in cards
        for credential in (c.auth, c.sign)
        if credential is not None
    ]
    assert len(serials) == 12
    assert len(set(serials)) == 12


def test_one_key_pool_still_issues(jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder) -> None:
    single = KeyPool(key_pool.keys[:1], seed=1)
    state = issue(jlis_ca, adult, single)
    assert state.auth is not None
    assert state.sign is not None


def test_fresh_keys_by_default(jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder) -> None:
    state = issue_card(jlis_ca, adult, pin=PIN, password=PASSWORD, issued_on=ISSUED)
    assert state.auth is not None
    assert state.auth.private_key not in key_pool.keys
    assert state.auth.private_key.key_size == 2048


# --- made-up holders ---------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**32))
def test_random_holder_is_plausible(seed: int) -> None:
    holder = random_holder(random.Random(seed))
    assert valid_my_number(holder.my_number)
    assert holder.sex in (Sex.MALE, Sex.FEMALE)
    assert date(1940, 1, 1) <= holder.birth_date <= date(2000, 12, 31)
    assert holder.name
    assert holder.address
    assert holder == random_holder(random.Random(seed))


def test_random_holder_takes_the_birth_date() -> None:
    assert random_holder(random.Random(1), birth_date=date(2012, 2, 29)).birth_date == date(
        2012, 2, 29
    )


# --- the card-application date and the age rules that hang on it ----------------------------


def _select(fid: int) -> bytes:
    return bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")


def test_under_15_no_signing_certificate_and_its_files_are_absent(
    jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    """SPEC.md: no signing certificate is issued to holders under 15."""
    from mynahil.card_emulator import EmulatedCard
    from mynahil.jpki import AID, JpkiFile

    twelve = issue(jlis_ca, random_holder(rng, birth_date=date(2012, 1, 10)), key_pool)
    assert twelve.auth is not None
    assert twelve.sign is None
    card = EmulatedCard(twelve)
    card.transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(AID.JPKI.value)]) + AID.JPKI.value)
    for fid in (JpkiFile.SIGN_CERT, JpkiFile.SIGN_CA_CERT, JpkiFile.SIGN_KEY):
        assert card.transmit(_select(fid))[-2:] == bytes.fromhex("6A82"), hex(fid)
    assert card.transmit(_select(JpkiFile.AUTH_CERT))[-2:] == bytes.fromhex("9000")
    # Fifteen on the day of issuance: the signing certificate is issued.
    fifteen = issue(jlis_ca, random_holder(rng, birth_date=date(2009, 5, 1)), key_pool)
    assert fifteen.sign is not None
    # One day short of fifteen: none.
    almost = issue(jlis_ca, random_holder(rng, birth_date=date(2009, 5, 2)), key_pool)
    assert almost.sign is None


def test_the_application_date_defaults_to_a_month_before_and_never_follows_issuance(
    jlis_ca: JlisCA, key_pool: KeyPool, adult: Holder, rng: random.Random
) -> None:
    from mynahil.reference_impl.jlis import default_applied_on

    assert default_applied_on(ISSUED) == date(2024, 4, 1)
    assert default_applied_on(ISSUED, date(2024, 4, 20)) == date(2024, 4, 20)  # a newborn
    with pytest.raises(ValueError, match="card-application date 2024-05-02 is after the issuance"):
        issue_card(
            jlis_ca, adult, pin=PIN, password=PASSWORD, issued_on=ISSUED,
            applied_on=date(2024, 5, 2), keys=key_pool,
        )  # fmt: skip
    baby = random_holder(rng, birth_date=date(2024, 4, 20))
    with pytest.raises(ValueError, match="after the card-application date"):
        issue_card(
            jlis_ca, baby, pin=PIN, password=PASSWORD, issued_on=ISSUED,
            applied_on=date(2024, 4, 19), keys=key_pool,
        )  # fmt: skip


def test_majority_for_the_card_is_decided_on_the_application_date(
    jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    """Applied for at 19 before 2022-04-01 (majority 20): a minor's 5-year card, even when
    issued after the change; applied for at 19 from 2022-04-01 (majority 18): 10 years."""
    holder = random_holder(rng, birth_date=date(2002, 6, 1))
    before = issue_card(
        jlis_ca, holder, pin=PIN, password=PASSWORD, issued_on=date(2022, 4, 20),
        applied_on=date(2022, 3, 25), keys=key_pool,
    )  # fmt: skip
    assert before.card_expires == date(2026, 6, 1)  # 5th birthday after issuance
    after = issue_card(
        jlis_ca, holder, pin=PIN, password=PASSWORD, issued_on=date(2022, 4, 20),
        applied_on=date(2022, 4, 1), keys=key_pool,
    )  # fmt: skip
    assert after.card_expires == date(2031, 6, 1)  # 10th birthday after issuance
