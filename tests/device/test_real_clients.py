"""Real PC/SC client software against the emulated card, through pcscd and vpcd.

``mynahil card attach`` runs as its own process (the interface acceptance checks use); OpenSC's
JPKI driver then lists the certificates and signs with the authentication key after the PIN,
and pyscard sees the card as "Virtual PCD 00 00".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.card import MyNumberCard, Pin, WrongPin
from mynahil.card_emulator import PinSlot, load_card
from mynahil.opensc import OpenSC, find_opensc
from mynahil.transports import PcscTransport, vpcd_reader_name
from tests.support import IN_CI, PIN

pytestmark = pytest.mark.pcsc


@pytest.fixture
def opensc() -> OpenSC:
    found = find_opensc()
    if found is None:
        if IN_CI:
            pytest.fail("CI=true but OpenSC is not installed (apt-get install opensc)")
        pytest.skip("OpenSC is not installed")
    return found


def test_pyscard_drives_the_attached_card(
    attached: subprocess.Popen[bytes], card_path: Path
) -> None:
    """pcscd shows the attached card as a reader; the Card API works through it."""
    transport = PcscTransport(vpcd_reader_name())
    atr = transport.connect()
    try:
        assert atr == bytes.fromhex("3BE000FF8131FE4514")
        card = MyNumberCard(transport)
        state = load_card(card_path)
        assert state.auth is not None
        assert card.read_auth_certificate() == state.auth.certificate
        with pytest.raises(WrongPin):
            card.verify(Pin.AUTH, "0000")
    finally:
        transport.disconnect()


def test_pin_counter_written_to_the_card_file(
    attached: subprocess.Popen[bytes], card_path: Path
) -> None:
    """A wrong PIN through pcscd lowers the counter in the card file (it survives the process)."""
    transport = PcscTransport(vpcd_reader_name())
    transport.connect()
    try:
        with pytest.raises(WrongPin):
            MyNumberCard(transport).verify(Pin.AUTH, "0000")
    finally:
        transport.disconnect()
    attached.terminate()
    attached.wait(timeout=10)
    assert load_card(card_path).pins[PinSlot.AUTH].tries_left == 2


def test_opensc_lists_certificates_and_signs(
    attached: subprocess.Popen[bytes], card_path: Path, tmp_path: Path, opensc: OpenSC
) -> None:
    """OpenSC's JPKI driver: four certificates listed; a SHA256-RSA-PKCS signature after the PIN."""
    listing = opensc.list_certificates()
    assert listing.returncode == 0, listing.stderr
    for label in (
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ):
        assert f"[{label}]" in listing.stdout
    assert "Tries left     : 3" in opensc.list_pins().stdout

    data, signature = tmp_path / "data", tmp_path / "sig"
    data.write_bytes(b"signed by OpenSC")
    signing = opensc.sign(PIN, data, signature)
    assert signing.returncode == 0, signing.stderr
    state = load_card(card_path)
    assert state.auth is not None
    key = x509.load_der_x509_certificate(state.auth.certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature.read_bytes(), data.read_bytes(), padding.PKCS1v15(), hashes.SHA256())


def test_opensc_refuses_a_wrong_pin(
    attached: subprocess.Popen[bytes], tmp_path: Path, opensc: OpenSC
) -> None:
    """OpenSC reports the wrong PIN and the card's counter goes down."""
    data = tmp_path / "data"
    data.write_bytes(b"x")
    signing = opensc.sign("9999", data, tmp_path / "sig")
    assert signing.returncode != 0
    assert "CKR_PIN_INCORRECT" in signing.stderr
    assert "Tries left     : 2" in opensc.list_pins().stdout
