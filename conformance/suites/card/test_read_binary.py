"""READ BINARY: chunks, offsets, the end of a file, extended length (JPKI.md: JPKI AP files)."""

from __future__ import annotations

import pytest
from cryptography import x509

from mynahil.card import Pin, digest_info_sha256
from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import JpkiFile


def _read_whole(card: CardUnderTest, chunk: int) -> bytes:
    """The auth certificate in ``chunk``-byte reads, its length from the DER header."""
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_CERT) == OK
    head, sw = card.read(0, 4)
    assert sw == OK
    total = 4 + int.from_bytes(head[2:4], "big")
    out = b""
    while len(out) < total:
        data, sw = card.read(len(out), min(chunk, total - len(out)))
        assert sw == OK, f"READ BINARY at offset {len(out)} answered {sw:04X}"
        assert data, f"READ BINARY at offset {len(out)} returned nothing"
        out += data
    return out


@pytest.mark.requirement("JPKI-READ-001")
def test_le_00_reads_256_bytes(card_under_test: CardUnderTest) -> None:
    assert card_under_test.select_ap() == OK
    assert card_under_test.select_ef(JpkiFile.AUTH_CERT) == OK
    data, sw = card_under_test.send("00B0000000")
    assert sw == OK
    assert len(data) == 256, f"Le 00 returned {len(data)} bytes"


@pytest.mark.requirement("JPKI-READ-002")
def test_offsets_chunks_and_the_end_of_the_file(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    whole = _read_whole(card, 256)
    x509.load_der_x509_certificate(whole)
    assert _read_whole(card, 100) == whole, "100-byte chunks differ from 256-byte chunks"
    assert _read_whole(card, 255) == whole, "255-byte chunks differ from 256-byte chunks"
    odd = 0x123
    data, sw = card.read(odd, 17)
    assert (data, sw) == (whole[odd : odd + 17], OK), "a read at an odd offset"
    tail_at = len(whole) - 10
    data, sw = card.read(tail_at, 256)
    assert sw == OK, f"a read past the end answered {sw:04X}"
    assert data == whole[tail_at:], "a read past the end must return the bytes that exist"
    beyond = len(whole) + 0x100
    _, sw = card.read(beyond, 4)
    assert sw == 0x6B00, f"an offset beyond the file answered {sw:04X}"


@pytest.mark.requirement("JPKI-READ-003")
@pytest.mark.parametrize("fid", [JpkiFile.AUTH_CERT, JpkiFile.AUTH_CA_CERT], ids=["000A", "000B"])
def test_the_der_header_gives_the_length(card_under_test: CardUnderTest, fid: int) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(fid) == OK
    head, sw = card.read(0, 4)
    assert sw == OK
    assert head[:2] == b"\x30\x82", f"the file starts {head.hex()}, not a DER SEQUENCE 30 82"
    total = 4 + int.from_bytes(head[2:4], "big")
    last, sw = card.read(total - 1, 1)
    assert sw == OK
    assert len(last) == 1
    _, sw = card.read(total, 1)
    assert sw == 0x6B00, f"the file goes on past its DER length ({sw:04X} at {total})"


@pytest.mark.requirement("JPKI-READ-004")
def test_extended_length_reads_if_offered(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    whole = _read_whole(card, 256)
    extended = bytes([0x00, 0xB0, 0x00, 0x00, 0x00]) + len(whole).to_bytes(2, "big")
    data, sw = card.send(extended)
    if sw in (0x6700, 0x6D00, 0x6E00, 0x6A86):
        pytest.skip(f"the card does not offer extended-length APDUs ({sw:04X})")
    assert sw == OK, f"an extended READ BINARY answered {sw:04X}"
    assert len(data) > 256, f"an extended read of {len(whole)} bytes returned {len(data)}"
    assert data == whole[: len(data)]


@pytest.mark.requirement("JPKI-IF-001")
def test_the_largest_short_apdus_cross_intact(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_CERT) == OK
    data, sw = card.send("00B0000000")
    assert (len(data), sw) == (256, OK), "256 bytes + 9000 did not come back whole"
    if not card.pin:
        pytest.skip("give --pin to send a DigestInfo (the largest command) to a real card")
    card.api.verify(Pin.AUTH, card.pin)
    signature = card.api.sign(Pin.AUTH, digest_info_sha256(b"interface"))
    assert len(signature) == 256
