"""Safety for real cards: no wrong PIN outside destructive tests, destructive tests skipped
unless allowed, and refused (with a banner) on a card that does not look emulated.

``realistic:*`` targets are the emulated card treated as a real one, so all of this runs here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mynahil.card_emulator import EmulatedCard
from mynahil.conformance.cli import run_target
from mynahil.conformance.golden import GOLDENS, changed_verdicts, load_golden
from mynahil.conformance.recording import read_trace
from mynahil.conformance.safety import (
    GuardedTransport,
    PinGuardState,
    UnsafeCommand,
    destructive_verdict,
)
from mynahil.conformance.targets import parse_target
from mynahil.transports.inproc import InProcessTransport
from tests.support import PASSWORD, PIN


def _verifies(report: Path) -> list[dict[str, Any]]:
    """Every VERIFY that carried a PIN, in every trace of a run."""
    entries = [e for f in (report / "traces").glob("*.jsonl") for e in read_trace(f)]
    return [e for e in entries if str(e.get("command") or "").startswith("00200080")
            and len(str(e["command"])) > 10]  # fmt: skip


def test_a_real_card_gets_no_wrong_pin_and_no_destructive_test(tmp_path: Path) -> None:
    code, results = run_target("realistic:inproc", tmp_path, pin=PIN, sign_password=PASSWORD)
    assert code == 0, results["requirements"]
    assert results["passed"] is True
    assert results["destructive"] == "skip"
    destructive = [t for t in results["tests"].values() if t["destructive"]]
    assert destructive
    assert {t["outcome"] for t in destructive} == {"skipped"}
    verifies = _verifies(tmp_path)
    assert verifies, "the suite verified the PIN it was given"
    assert all(e.get("redacted") == "pin" for e in verifies), "a PIN other than --pin was sent"
    assert all("31323334" not in str(e["command"]) for e in verifies), "the PIN is in a trace"
    # CI mode: the report names what a run without destructive tests cannot judge
    assert {"JPKI-PIN-002", "JPKI-PIN-003", "JPKI-PIN-004", "JPKI-PIN-005", "SPEC-CARD-001"} <= set(
        results["not_judged"]
    )
    assert "JPKI-SIG-001" not in results["not_judged"]
    assert results["requirements"]["JPKI-PIN-003"]["not_judged"] is True
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "a run without destructive tests cannot judge" in html
    # the golden kept for this target: no verdict changed (issue 20.5)
    assert changed_verdicts(load_golden(GOLDENS / "realistic-inproc.json"), results) == []
    assert "JPKI-PIN-003" in html


def test_a_wrong_pin_costs_one_try_and_stops_the_run(tmp_path: Path) -> None:
    code, results = run_target("realistic:inproc", tmp_path, pin="9999")
    assert code != 0
    assert results["passed"] is False
    assert len(_verifies(tmp_path)) == 1, "after the card refused the PIN nothing else was sent"


def test_destructive_tests_run_on_an_emulated_atr_when_allowed(tmp_path: Path) -> None:
    _code, results = run_target(
        "realistic:inproc", tmp_path, pin=PIN, sign_password=PASSWORD, allow_destructive=True,
        extra=["-k", "wrong_pin or blocks"],
    )  # fmt: skip
    assert results["destructive"] == "run"
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "passed"


def test_destructive_tests_are_refused_on_a_card_that_is_not_ours(tmp_path: Path) -> None:
    code, results = run_target(
        "realistic:defect:wrong_atr", tmp_path, pin=PIN, allow_destructive=True
    )
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "REFUSED" in results["refused"]
    assert results["passed"] is False
    assert "REFUSED" in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert not _verifies(tmp_path)


@pytest.mark.parametrize(
    ("emulated", "allowed", "looks", "verdict"),
    [(True, False, False, "run"), (False, False, True, "skip"), (False, True, True, "run"),
     (False, True, False, "refuse")],
)  # fmt: skip
def test_destructive_verdict(emulated: bool, allowed: bool, looks: bool, verdict: str) -> None:
    found = destructive_verdict(
        emulated_target=emulated, allow_destructive=allowed, atr_looks_emulated=looks
    )
    assert found == verdict


def _guarded(pin: str = PIN) -> tuple[GuardedTransport, EmulatedCard]:
    card = parse_target("card:inproc").emulated_card(faults="")
    assert isinstance(card, EmulatedCard)
    # Not emulated_reader: the guard under test is itself a transport, wrapping the bare wire.
    wire = GuardedTransport(InProcessTransport(card), PinGuardState(frozenset({pin.encode()})))
    wire.connect()
    return wire, card


SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")


def test_the_guard_sends_only_the_given_pin() -> None:
    wire, _card = _guarded()
    wire.transmit(SELECT_JPKI)
    wire.transmit(SELECT_AUTH_PIN)
    with pytest.raises(UnsafeCommand, match="other than the one given"):
        wire.transmit(bytes.fromhex("002000800430303030"))
    with pytest.raises(UnsafeCommand, match="CHANGE REFERENCE DATA"):
        wire.transmit(bytes.fromhex("002401800435363738"))
    assert wire.transmit(bytes.fromhex("002000800431323334")) == b"\x90\x00"


def test_the_guard_spends_no_try_on_a_counter_that_is_not_full() -> None:
    wire, card = _guarded()
    card.transmit(SELECT_JPKI)
    card.transmit(SELECT_AUTH_PIN)
    assert card.transmit(bytes.fromhex("002000800430303030")) == b"\x63\xc2"  # someone else
    wire.transmit(SELECT_JPKI)
    wire.transmit(SELECT_AUTH_PIN)
    with pytest.raises(UnsafeCommand, match="2 of 3 tries"):
        wire.transmit(bytes.fromhex("002000800431323334"))
    assert card.transmit(bytes.fromhex("00200080")) == b"\x63\xc2", "no try was spent"


def test_the_guard_follows_short_ef_identifiers() -> None:
    """VERIFY by SFI (P2 = 80|SFI) names its PIN EF itself: the guard checks that EF, not the
    selected one, and knows EF 0011 of the card-face AP is not the card-info PIN."""
    wire, card = _guarded()
    wire.transmit(SELECT_JPKI)
    wire.transmit(SELECT_AUTH_PIN)
    with pytest.raises(UnsafeCommand, match="known PIN file"):
        wire.transmit(bytes.fromhex("002000900431323334"))  # EF 0010 is no PIN file
    card.transmit(SELECT_JPKI)
    assert card.transmit(bytes.fromhex("002000980430303030")) == b"\x63\xc2"  # someone else
    wire.transmit(SELECT_JPKI)
    wire.transmit(bytes.fromhex("00A4020C02000A"))
    with pytest.raises(UnsafeCommand, match="2 of 3 tries"):
        wire.transmit(bytes.fromhex("002000980431323334"))
    assert card.transmit(bytes.fromhex("00200098")) == b"\x63\xc2", "no try was spent"
    wire, card = _guarded()
    wire.transmit(bytes.fromhex("00A4040C0AD3921000310001010402"))  # the card-face AP
    with pytest.raises(UnsafeCommand, match="known PIN file"):
        wire.transmit(bytes.fromhex("002000910431323334"))


def test_a_signing_password_short_of_tries_fails_pin_005_and_nothing_else(tmp_path: Path) -> None:
    """The guard spends none of the tries left, yet the run goes on: only the tests entering
    the signing password are skipped (saying why), and JPKI-PIN-005 fails with its reason."""
    code, results = run_target(
        "realistic:defect:sign_password_four_tries", tmp_path, pin=PIN, sign_password=PASSWORD
    )
    assert code != 0
    verdicts = {r: v["verdict"] for r, v in results["requirements"].items()}
    assert verdicts["JPKI-PIN-005"] == "failed"
    failed = [r for r, v in verdicts.items() if v == "failed"]
    assert failed == ["JPKI-PIN-005"], failed
    assert results["catalogue"]["untested"] == []
    assert verdicts["JPKI-FILE-005"] == "skipped"
    assert "4 of 5 tries" in " ".join(results["requirements"]["JPKI-FILE-005"]["reasons"])
    assert verdicts["JPKI-SIG-001"] == "passed", "the auth PIN's tests still ran"
    assert "4 of 5 tries" in results["tests"][_test_of(results, "JPKI-PIN-005")]["message"]


def _test_of(results: dict[str, Any], requirement: str) -> str:
    failed = [n for n in results["requirements"][requirement]["tests"]
              if results["tests"][n]["outcome"] == "failed"]  # fmt: skip
    return str(failed[0])


@pytest.mark.parametrize(
    ("target", "verdict"), [("realistic:inproc", "passed"), ("realistic:defect:no_df21", "failed")]
)
def test_df21_is_checked_on_a_real_card_without_reading_who_it_is(
    tmp_path: Path, target: str, verdict: str
) -> None:
    """Through a reader the DF21 header is read a few bytes at a time: a card without it fails
    JPKI-CINFO-004, and no response in the traces holds more than the header's bytes."""
    _code, results = run_target(target, tmp_path, pin=PIN, card_info_pin=PIN,
                                extra=["-k", "JPKI-CINFO-004"])  # fmt: skip
    requirement = results["requirements"]["JPKI-CINFO-004"]
    assert requirement["verdict"] == verdict, requirement
    if verdict == "failed":
        assert requirement["failures"][0]["reason"] == (
            "EF 0002 must start with DF21 (myna skips it)"
        )
    entries = [e for f in (tmp_path / "traces").glob("*.jsonl") for e in read_trace(f)]
    reads = [e for e in entries if str(e.get("command") or "").lower().startswith("00b0")]
    assert reads
    assert all(len(str(e["response"])) <= 2 * 8 + 4 for e in reads), "a read beyond the header"
