"""What the municipal window does when it hands out a card: check the holder, set the PINs,
have the card make its keys and the J-LIS CA certify them.
"""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta

from mynahil.card_emulator.card import card_info_files
from mynahil.card_emulator.face import face_images
from mynahil.card_emulator.pin import Pin
from mynahil.card_emulator.state import (
    CardState,
    Holder,
    KeyCredential,
    PinSlot,
    Sex,
    SignedFiles,
    printed_pins,
)
from mynahil.carddata import (
    FaceEntries,
    encode_face_birth,
    encode_face_entries,
    encode_face_my_number,
    encode_info_signature,
    encode_public_key,
)
from mynahil.jpki import my_number_check_digit, valid_my_number

from .ca import JlisCA
from .keypool import FreshKeys, KeySource
from .validity import card_expiry, certificate_not_after, signing_certificate_allowed

__all__ = [
    "APPLICATION_LEAD",
    "default_applied_on",
    "issue_card",
    "random_holder",
    "sign_card_data",
]

# A key pool may hand the same key out twice in a row; a card's two keys are always distinct,
# so the signing key is drawn again (a bounded number of times: a one-key pool cannot comply).
_REDRAWS = 16

APPLICATION_LEAD = timedelta(days=30)
"""How long before issuance a card is taken to have been applied for when no date is given
(SPEC.md: issuance takes about a month after the application)."""


def default_applied_on(issued_on: date, birth_date: date | None = None) -> date:
    """The card-application date assumed for a card issued on ``issued_on``: a month before,
    but never before the holder's birth (a newborn's card is applied for after birth)."""
    assumed = issued_on - APPLICATION_LEAD
    return assumed if birth_date is None else max(assumed, min(birth_date, issued_on))


def issue_card(
    ca: JlisCA,
    holder: Holder,
    *,
    pin: str,
    password: str,
    issued_on: date,
    applied_on: date | None = None,
    card_info_pin: str | None = None,
    with_certificates: bool = True,
    keys: KeySource | None = None,
    atr_profile: str = "contact",
    label: str = "",
    security_code: str | None = None,
) -> CardState:
    """A new card for ``holder``, applied for on ``applied_on`` (default: a month before
    issuance, :func:`default_applied_on`) and issued on ``issued_on``.

    ``pin`` protects user authentication, ``password`` the signing key, ``card_info_pin``
    (default: ``pin``) the card-info AP. With ``with_certificates=False`` the holder declined
    the certificates and the card carries none. A holder under 15 gets no signing
    certificate (the signing files are absent, as for a declined one). The card's validity
    depends on the holder's age on the application date (see ``validity``). Raises
    ValueError, with a message to show the clerk, for an invalid My Number, a birth date
    after the application, an application after issuance, a PIN that breaks policy or a
    security code that is not 4 digits. ``security_code`` (default: random) is the 4-digit code
    printed on the card face. J-LIS signs the card-info and card-face data (see
    :func:`sign_card_data`).
    """
    if not valid_my_number(holder.my_number):
        raise ValueError(f"{holder.my_number!r} is not a valid My Number (check digit)")
    applied = default_applied_on(issued_on, holder.birth_date) if applied_on is None else applied_on
    if applied > issued_on:
        raise ValueError(
            f"the card-application date {applied} is after the issuance date {issued_on}"
        )
    if holder.birth_date > issued_on:
        raise ValueError(
            f"the birth date {holder.birth_date} is after the issuance date {issued_on}"
        )
    if holder.birth_date > applied:
        raise ValueError(
            f"the birth date {holder.birth_date} is after the card-application date {applied}"
        )
    pins = {
        PinSlot.AUTH: Pin.create(PinSlot.AUTH.policy, pin),
        PinSlot.SIGN: Pin.create(PinSlot.SIGN.policy, password),
        PinSlot.CARD_INFO: Pin.create(
            PinSlot.CARD_INFO.policy, pin if card_info_pin is None else card_info_pin
        ),
    }
    if security_code is None:
        security_code = f"{secrets.randbelow(10000):04d}"
    elif not (len(security_code) == 4 and security_code.isdigit()):
        raise ValueError(f"the security code is 4 digits, not {security_code!r}")
    card_expires = card_expiry(holder.birth_date, issued_on, applied_on=applied)
    pins.update(printed_pins(holder, card_expires, security_code))
    auth: KeyCredential | None = None
    sign: KeyCredential | None = None
    if with_certificates:
        source = keys if keys is not None else FreshKeys()
        not_after = certificate_not_after(holder.birth_date, issued_on, card_expires)
        auth_key = source.new_key()
        sign_key = source.new_key()
        for _ in range(_REDRAWS):
            if sign_key is not auth_key:
                break
            sign_key = source.new_key()
        auth = KeyCredential(
            auth_key,
            ca.issue_auth_certificate(
                auth_key.public_key(), not_before=issued_on, not_after=not_after
            ),
            ca.auth_ca_certificate,
        )
        if signing_certificate_allowed(holder.birth_date, issued_on):
            sign = KeyCredential(
                sign_key,
                ca.issue_sign_certificate(
                    sign_key.public_key(), holder, not_before=issued_on, not_after=not_after
                ),
                ca.sign_ca_certificate,
            )
    return CardState(
        holder=holder,
        auth=auth,
        sign=sign,
        pins=pins,
        card_expires=card_expires,
        atr_profile=atr_profile,
        label=label,
        security_code=security_code,
        signed=sign_card_data(ca, holder, card_expires, security_code),
    )


def sign_card_data(
    ca: JlisCA, holder: Holder, card_expires: date, security_code: str
) -> SignedFiles:
    """What J-LIS writes and signs onto the card-info and card-face APs at issuance."""
    sign = ca.sign_card_data
    key_raw = encode_public_key(ca.card_data_public_key)
    ef1, ef2 = card_info_files(holder)
    images = face_images(holder, security_code)
    birth = f"{holder.birth_date:%Y%m%d}"
    entries = FaceEntries(
        birth=birth,
        sex=holder.sex.value,
        public_key_raw=key_raw,
        name_png=images.name_png,
        address_png=images.address_png,
        photo_jp2=images.photo_jp2,
        expiry=f"{card_expires:%Y%m%d}",
        security_code_png=images.security_code_png,
    )
    return SignedFiles(
        info_signature=encode_info_signature(ef1, ef2, sign),
        certificate=ca.card_data_certificate,
        face_birth=encode_face_birth(birth, key_raw, sign),
        face_entries=encode_face_entries(entries, sign),
        face_my_number=encode_face_my_number(images.my_number_png, key_raw, sign),
    )


_SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤")
_MALE_NAMES = ("太郎", "大翔", "蓮", "健太", "翔", "誠", "浩二", "悠真")
_FEMALE_NAMES = ("花子", "陽菜", "結衣", "さくら", "美咲", "由美", "愛", "葵")
_PLACES = (
    "東京都千代田区千代田",
    "大阪府大阪市北区梅田",
    "北海道札幌市中央区北一条西",
    "愛知県名古屋市中区三の丸",
    "福岡県福岡市博多区博多駅前",
    "宮城県仙台市青葉区本町",
    "広島県広島市中区基町",
    "沖縄県那覇市泉崎",
)
_BIRTHS_FROM = date(1940, 1, 1)
_BIRTHS_TO = date(2000, 12, 31)


def random_holder(rng: random.Random, *, birth_date: date | None = None) -> Holder:
    """A plausible, made-up holder drawn from ``rng`` (reproducible for a seeded ``rng``).

    The My Number has a correct check digit; the birth date, unless given, makes an adult
    born between 1940 and 2000.
    """
    sex = rng.choice((Sex.MALE, Sex.FEMALE))
    given = rng.choice(_MALE_NAMES if sex is Sex.MALE else _FEMALE_NAMES)
    name = f"{rng.choice(_SURNAMES)}\u3000{given}"  # surname, ideographic space, given name
    address = (
        f"{rng.choice(_PLACES)}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
    )
    if birth_date is None:
        span = (_BIRTHS_TO - _BIRTHS_FROM).days
        birth_date = _BIRTHS_FROM + timedelta(days=rng.randint(0, span))
    first_eleven = "".join(str(rng.randint(0, 9)) for _ in range(11))
    my_number = first_eleven + str(my_number_check_digit(first_eleven))
    return Holder(name=name, address=address, birth_date=birth_date, sex=sex, my_number=my_number)
