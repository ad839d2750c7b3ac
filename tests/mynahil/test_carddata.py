"""The card-info and card-face data formats and the relying party's check, against any bytes
a card (or a forger) can return: a clear CardDataInvalid, never another exception."""

from __future__ import annotations

import contextlib

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from mynahil.card_emulator import CardState
from mynahil.carddata import (
    CardDataInvalid,
    CvCertificate,
    decode_face_entries,
    tlv_header_length,
    verify_face,
    verify_info,
)
from tests.support import CardFactory, examples

_TLVISH = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda tag, body: tag + bytes((len(body),)) + body,
        st.sampled_from([b"\xff\x20", b"\xff\x30", b"\x7f\x21", b"\xdf\x21", b"\xe0"]),
        st.binary(max_size=120),
    ),
)


@pytest.fixture(scope="module")
def signed(card_factory: CardFactory) -> tuple[CardState, x509.Certificate]:
    return card_factory(), x509.load_der_x509_certificate(card_factory.ca.auth_ca_certificate)


@settings(max_examples=examples(300), deadline=None)
@given(_TLVISH)
def test_parsers_fail_clearly_on_any_bytes(data: bytes) -> None:
    for parse in (CvCertificate.parse, decode_face_entries):
        with contextlib.suppress(CardDataInvalid):
            parse(data)
    length = tlv_header_length(data)
    assert length is None or length >= 2


@settings(max_examples=examples(60), deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_altered_byte_of_the_signed_files_is_caught(
    signed: tuple[CardState, x509.Certificate], position: int, flip: int
) -> None:
    from mynahil.card_emulator.card import card_info_files

    state, root = signed
    assert state.signed is not None
    ef1, ef2 = card_info_files(state.holder)
    files = [ef1, ef2, state.signed.info_signature, state.signed.certificate]
    verify_info(files[0], files[1], files[2], files[3], root)
    which = position % 4
    target = bytearray(files[which])
    target[(position // 4) % len(target)] ^= flip
    files[which] = bytes(target)
    with pytest.raises(CardDataInvalid):
        verify_info(files[0], files[1], files[2], files[3], root)


@settings(max_examples=examples(40), deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_altered_byte_of_the_card_face_is_caught(
    signed: tuple[CardState, x509.Certificate], position: int, flip: int
) -> None:
    state, root = signed
    assert state.signed is not None
    entries = bytearray(state.signed.face_entries)
    verify_face(state.signed.face_birth, bytes(entries), state.signed.face_my_number,
                state.signed.certificate, root)  # fmt: skip
    entries[position % len(entries)] ^= flip
    with pytest.raises(CardDataInvalid):
        verify_face(None, bytes(entries), None, state.signed.certificate, root)
