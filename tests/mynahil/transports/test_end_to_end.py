"""The same card flows over every wire: in-process, the vpcd socket, and pcscd + pyscard.

These are the tests that make "the same Card API drives every transport" true: each runs the
read-certificate + PIN + signature flow, the PIN counter and a card removal on each wire.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.card import MyNumberCard, Pin, WrongPin
from mynahil.card_emulator import CardState, EmulatedCard, FaultProfile, FaultyCard, open_transport
from mynahil.transports import CardRemovedError, Transport, TransportError
from tests.support import PIN

WIRES = [
    pytest.param("inproc", id="inproc"),
    pytest.param("socket", id="socket"),
    pytest.param("vpcd", id="pcscd-vpcd", marks=pytest.mark.pcsc),
]


@pytest.fixture
def wire(request: pytest.FixtureRequest) -> str:
    spec: str = request.param
    if spec == "vpcd":
        request.getfixturevalue("pcsc_stack")
    return spec


@pytest.fixture
def connected(wire: str, card_state: CardState) -> Iterator[Transport]:
    transport = open_transport(wire, EmulatedCard(card_state))
    transport.connect()
    yield transport
    transport.disconnect()


def _verify(cert_der: bytes, message: bytes, signature: bytes) -> None:
    key = x509.load_der_x509_certificate(cert_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("wire", WIRES, indirect=True)
def test_read_certificate_verify_pin_and_sign(connected: Transport, card_state: CardState) -> None:
    """JPKI.md: the whole MyKey flow gives the card's certificate and a valid signature."""
    assert card_state.auth is not None
    assert connected.atr == bytes.fromhex("3BE000FF8131FE4514")
    card = MyNumberCard(connected)
    certificate, signature = card.authenticate(PIN, b"challenge from the platform")
    assert certificate == card_state.auth.certificate
    _verify(certificate, b"challenge from the platform", signature)


@pytest.mark.parametrize("wire", WIRES, indirect=True)
def test_wrong_pin_counts_down_over_the_wire(connected: Transport) -> None:
    """JPKI.md "PINs": a wrong PIN answers 63Cx with the tries left; a right one restores 3."""
    card = MyNumberCard(connected)
    with pytest.raises(WrongPin) as first:
        card.verify(Pin.AUTH, "0000")
    assert first.value.tries_left == 2
    assert card.tries_left(Pin.AUTH) == 2
    card.verify(Pin.AUTH, PIN)
    assert card.tries_left(Pin.AUTH) == 3


@pytest.mark.parametrize("wire", WIRES, indirect=True)
def test_extended_length_read_passes_the_wire(connected: Transport, card_state: CardState) -> None:
    """Extended APDUs cross vpcd (DESIGN.md): the whole certificate in one READ BINARY."""
    assert card_state.auth is not None
    card = MyNumberCard(connected)
    card.read_auth_certificate()  # selects the AP and the EF
    response = connected.transmit(bytes.fromhex("00B00000000000"))
    assert response[-2:] == b"\x90\x00"
    assert response[:-2] == card_state.auth.certificate


@pytest.mark.parametrize("wire", WIRES, indirect=True)
def test_removed_card_is_reported_as_removed(wire: str, card_state: CardState) -> None:
    """A card that leaves the field mid-flow surfaces as CardRemovedError on every wire."""
    faulty = FaultyCard(EmulatedCard(card_state), FaultProfile(remove_after=3))
    transport = open_transport(wire, faulty)
    transport.connect()
    try:
        card = MyNumberCard(transport)
        with pytest.raises(CardRemovedError):
            card.authenticate(PIN, b"x")
    finally:
        transport.disconnect()


@pytest.mark.pcsc
@pytest.mark.usefixtures("pcsc_stack")
def test_a_reader_held_by_another_card_is_refused_not_shared(card_state: CardState) -> None:
    """With another process's card in the vpcd reader, a second attachment would be queued
    unseen and every APDU would reach the other card: connecting must refuse instead."""
    held = open_transport("vpcd", EmulatedCard(card_state))
    held.connect()
    try:
        second = open_transport("vpcd", EmulatedCard(card_state))
        with pytest.raises(TransportError, match="already holds a card"):
            second.connect()
    finally:
        held.disconnect()
    again = open_transport("vpcd", EmulatedCard(card_state))  # once it is gone, all is well
    again.connect()
    again.disconnect()


def test_a_taken_listening_port_is_named_with_what_to_do() -> None:
    """A phone target's listener on a port someone holds (pcscd's vpcd, say) says so."""
    import socket

    from mynahil.transports.vpcd import VpcdListenerTransport

    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(TransportError, match=f"cannot listen on 127.0.0.1:{port}"):
            VpcdListenerTransport("127.0.0.1", port)
