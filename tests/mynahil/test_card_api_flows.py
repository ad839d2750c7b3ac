"""The Card API's typed errors and file reading, over the in-process transport."""

from __future__ import annotations

import pytest

from mynahil.card import MyNumberCard, NoCertificate, Pin, PinBlocked, PinRequired, WrongPin
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.jpki import AID, CardFaceFile
from mynahil.transports import Transport
from tests.support import PASSWORD, PIN, CardFactory


def test_wrong_then_blocked(card_state: CardState) -> None:
    card = emulated_reader(card_state)
    tries = []
    for _ in range(3):
        with pytest.raises(WrongPin) as wrong:
            card.verify(Pin.AUTH, "0000")
        tries.append(wrong.value.tries_left)
    assert tries == [2, 1, 0]
    with pytest.raises(PinBlocked, match="municipal window"):
        card.tries_left(Pin.AUTH)
    with pytest.raises(PinBlocked):
        card.authenticate(PIN, b"c")


def test_declined_card_says_no_certificate_before_spending_a_try(card_factory: CardFactory) -> None:
    card = emulated_reader(card_factory(with_certificates=False))
    with pytest.raises(NoCertificate, match="no electronic certificate"):
        card.authenticate(PIN, b"c")
    assert card.tries_left(Pin.AUTH) == 3


def test_signing_certificate_needs_the_password(card_state: CardState) -> None:
    assert card_state.sign is not None
    card = emulated_reader(card_state)
    with pytest.raises(PinRequired):
        card.read_sign_certificate()
    card.verify(Pin.SIGN, PASSWORD)
    assert card.read_sign_certificate() == card_state.sign.certificate


def test_card_info(card_state: CardState) -> None:
    info = emulated_reader(card_state).read_card_info(PIN)
    assert info.my_number == card_state.holder.my_number
    assert info.basic.name == card_state.holder.name


def test_change_pin(card_state: CardState) -> None:
    card = emulated_reader(card_state)
    card.change_pin(Pin.AUTH, PIN, "9876")
    card.verify(Pin.AUTH, "9876")
    with pytest.raises(WrongPin):
        card.verify(Pin.AUTH, PIN)


class _FileOf512(Transport):
    """A reader serving one 512-byte non-DER file: reading must stop at 6B00 cleanly."""

    name = "fake"
    content = bytes(range(256)) * 2

    def connect(self) -> bytes:
        return b""

    def disconnect(self) -> None:
        pass

    @property
    def atr(self) -> bytes:
        return b""

    def transmit(self, apdu: bytes) -> bytes:
        offset, le = (apdu[2] << 8) | apdu[3], apdu[4] or 256
        if offset >= len(self.content):
            return b"\x6b\x00"
        return self.content[offset : offset + le] + b"\x90\x00"


def test_reading_a_file_that_ends_on_a_chunk_boundary() -> None:
    assert MyNumberCard(_FileOf512()).read_current_file() == _FileOf512.content


def test_card_info_with_alternatives_and_the_relying_party_check(
    card_factory: CardFactory,
) -> None:
    from cryptography import x509

    from mynahil.card_emulator.state import match_b_value
    from mynahil.carddata import CardDataInvalid

    state = card_factory()
    root = x509.load_der_x509_certificate(card_factory.ca.auth_ca_certificate)
    b = match_b_value(state.holder, state.card_expires, state.security_code)
    for pin, value in (
        (Pin.CARD_INFO, PIN),
        (Pin.CARD_INFO_A, state.holder.my_number),
        (Pin.CARD_INFO_B, b),
    ):
        info = emulated_reader(state).read_card_info(value, with_pin=pin, signed=True)
        assert info.my_number == state.holder.my_number
        info.verify(root)
    with pytest.raises(WrongPin, match="照合番号B: 9 tries left"):
        emulated_reader(state).read_card_info("0" * 14, with_pin=Pin.CARD_INFO_B)
    unsigned = emulated_reader(state).read_card_info(PIN)
    with pytest.raises(CardDataInvalid, match="no EF 0003, 0004"):
        unsigned.verify(root)


def test_card_face_short_and_extended_reads_agree(card_state: CardState) -> None:
    card = emulated_reader(card_state)
    face = card.read_card_face(card_state.holder.my_number)
    assert face.my_number_png is not None
    assert face.my_number_png.startswith(b"\x89PNG")
    sent = card.apdus_sent
    whole = card.read_file(AID.CARD_FACE, CardFaceFile.ENTRIES, extended=True)
    assert card.apdus_sent == sent + 1, "one extended READ BINARY"
    assert whole == face.entries_file
    assert len(whole) > 256 * 20


def test_card_face_read_whole_with_extended_le(card_state: CardState) -> None:
    short = emulated_reader(card_state).read_card_face(card_state.holder.my_number)
    card = emulated_reader(card_state)
    extended = card.read_card_face(card_state.holder.my_number, extended=True)
    assert extended == short
    assert card.apdus_sent == 7, "SELECT AP, SELECT PIN EF, VERIFY, one READ BINARY a file"
