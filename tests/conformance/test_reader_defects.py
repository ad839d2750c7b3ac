"""Defective readers on the PC/SC path: a relay on the vicc wire, between pcscd's vpcd driver
and a correct emulated card, alters the traffic as a faulty reader would. The suite must fail
each under its requirement (the card is correct, so only the reader can be blamed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mynahil.apdu import CommandApdu
from mynahil.card import MyNumberCard, Pin, digest_info_sha256
from mynahil.card_emulator import EmulatedCard, FaultyCard, emulated_reader
from mynahil.conformance.cli import run_target
from mynahil.conformance.defects import MATRIX, READER_DEFECTS, DefectiveReader
from mynahil.conformance.targets import EMULATED_PIN, TargetError, parse_target
from mynahil.jpki import AID, JpkiFile

# The three tests that judge the reader's part (the largest short APDUs, an extended-length
# read, the time budget) and one short exchange no reader defect here touches (unknown
# instruction and class). Selected by name, so each row costs seconds, not a full run.
READER_TESTS = (
    "test_the_largest_short_apdus_cross_intact or test_extended_le_reads_the_whole_file "
    "or test_mykey_read_and_sign_fits_the_budget or test_unknown_instruction_and_class"
)
JUDGED = ("JPKI-IF-001", "JPKI-READ-005", "JPKI-TIME-001")
CONTROL = "JPKI-SW-001"


def test_each_reader_defect_is_a_pcsc_row_of_the_matrix() -> None:
    rows = {r.target: r for r in MATRIX}
    for name, defect in READER_DEFECTS.items():
        row = rows[f"card:reader-defect:{name}"]
        assert (row.must_fail, row.needs) == (defect.caught_by, "pcsc")
        assert set(defect.caught_by) <= set(JUDGED)
    target = parse_target("card:reader-defect:truncates_at_256")
    assert (target.wire, target.reader_defect, target.defect) == ("vpcd", "truncates_at_256", None)
    with pytest.raises(TargetError, match="no reader defect 'nope'; known: mishandles_61xx"):
        parse_target("card:reader-defect:nope")


@pytest.mark.pcsc
@pytest.mark.parametrize("name", sorted(READER_DEFECTS))
def test_a_defective_reader_is_caught_under_its_requirement(
    tmp_path: Path, pcsc_stack: None, name: str
) -> None:
    _code, results = run_target(f"card:reader-defect:{name}", tmp_path, extra=["-k", READER_TESTS])
    verdicts = {r: results["requirements"][r]["verdict"] for r in JUDGED}
    for requirement in READER_DEFECTS[name].caught_by:
        assert verdicts[requirement] == "failed", verdicts
    assert results["passed"] is False
    assert results["reader"].startswith("vpcd:")
    # The card behind the reader is correct: short exchanges still pass through it.
    assert results["requirements"][CONTROL]["verdict"] == "passed"


@pytest.mark.pcsc
def test_the_same_selection_passes_through_a_correct_reader(
    tmp_path: Path, pcsc_stack: None
) -> None:
    """The control: the three requirements pass for the same card through pcscd untouched."""
    _code, results = run_target("card:vpcd", tmp_path, extra=["-k", READER_TESTS])
    verdicts = {r: results["requirements"][r]["verdict"] for r in (*JUDGED, CONTROL)}
    assert set(verdicts.values()) == {"passed"}, verdicts


@pytest.fixture(scope="module")
def card() -> EmulatedCard | FaultyCard:
    return parse_target("card:inproc").emulated_card(faults="")


def _relay(card: EmulatedCard | FaultyCard, defect: str, budget_ms: float = 1000) -> MyNumberCard:
    return emulated_reader(DefectiveReader(card, defect, budget_ms=budget_ms))


def _sign_command() -> bytes:
    return CommandApdu(0x80, 0x2A, 0x00, 0x80, digest_info_sha256(b"x"), le=256).to_bytes()


def test_the_relay_alters_what_each_defect_names(card: EmulatedCard | FaultyCard) -> None:
    """Without pcscd, the relay itself: each defect changes the exchange it names, and the
    same exchange through a correct card is whole."""
    read_256 = bytes.fromhex("00B0000000")
    read_extended = bytes.fromhex("00B08A00000000")

    api = _relay(card, "truncates_at_256")
    api.select_application(AID.JPKI)
    api.select_file(JpkiFile.AUTH_CERT)
    assert len(card.transmit(read_256)) == 258
    assert len(api.transport.transmit(read_256)) == 256

    api = _relay(card, "refuses_extended")
    api.select_application(AID.JPKI)
    api.select_file(JpkiFile.AUTH_CERT)
    assert api.transport.transmit(read_extended) == b"\x67\x00"
    assert api.transport.transmit(read_256)[-2:] == b"\x90\x00"  # short APDUs pass

    api = _relay(card, "mishandles_61xx")
    api.verify(Pin.AUTH, EMULATED_PIN)
    api.select_file(JpkiFile.AUTH_KEY)
    assert api.transport.transmit(_sign_command()) == b"\x61\x00"
    assert api.transport.transmit(bytes.fromhex("00C0000000")) == b"\x90\x00"  # 0, not 256

    api = _relay(card, "slow_signing", budget_ms=100)
    api.verify(Pin.AUTH, EMULATED_PIN)
    start = time.perf_counter()
    assert len(api.sign(Pin.AUTH, digest_info_sha256(b"x"))) == 256
    assert time.perf_counter() - start >= 0.15  # 1.5 x the budget, on the signing command


def test_the_relay_refuses_an_unknown_defect(card: EmulatedCard | FaultyCard) -> None:
    with pytest.raises(ValueError, match="no reader defect 'x'; known: mishandles_61xx"):
        DefectiveReader(card, "x")
