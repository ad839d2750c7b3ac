"""The pieces of destructive runs through a reader that need no pcscd: which PIN counters a card
has spent (the retry query only), the fresh-card hook's command, and the order of the tests.
The runs themselves, through pcscd, are in test_destructive_reader.py."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from mynahil.apdu import CommandApdu
from mynahil.card_emulator import emulated_reader
from mynahil.conformance.fresh_card import FreshCardError, FreshCardHook, parse_hook, spent_tries
from mynahil.conformance.targets import parse_target
from mynahil.jpki import AID, JpkiFile
from mynahil.transports import Transport


def _card() -> Transport:
    """The connected wire to a fresh card: these tests send raw APDUs, below the Card API."""
    return emulated_reader(parse_target("card:inproc").emulated_card()).transport


def _verify(wire: Transport, pin: bytes, ef: int = JpkiFile.AUTH_PIN) -> int:
    wire.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x0C, AID.JPKI.value).to_bytes())
    wire.transmit(CommandApdu(0x00, 0xA4, 0x02, 0x0C, ef.to_bytes(2, "big")).to_bytes())
    return int.from_bytes(wire.transmit(CommandApdu(0x00, 0x20, 0x00, 0x80, pin).to_bytes())[-2:])


def test_a_fresh_card_has_spent_nothing_and_asking_costs_no_try() -> None:
    wire = _card()
    assert spent_tries(wire) == []
    assert spent_tries(wire) == []  # the retry queries themselves cost nothing


def test_a_wrong_pin_and_a_lockout_are_seen() -> None:
    wire = _card()
    assert _verify(wire, b"0000") == 0x63C2
    assert spent_tries(wire) == ["auth PIN: 2 of 3 tries (63C2)"]
    assert _verify(wire, b"WRONG0", JpkiFile.SIGN_PIN) == 0x63C4
    assert _verify(wire, b"0000") == 0x63C1
    assert _verify(wire, b"0000") == 0x63C0
    assert spent_tries(wire) == [
        "auth PIN: blocked (6984)",
        "signing password: 4 of 5 tries (63C4)",
    ]


def test_the_hook_command_runs_with_the_test_named(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    script = (
        f"import os, pathlib; pathlib.Path({str(seen)!r})"
        ".write_text(os.environ['MYNAHIL_CONFORMANCE_TEST'])"
    )
    hook = parse_hook(shlex.join([sys.executable, "-c", script]))
    assert hook is not None
    assert not hook.prompts
    hook.insert("test_third_wrong_pin_blocks_for_good")
    assert seen.read_text() == "test_third_wrong_pin_blocks_for_good"


def test_a_failing_hook_says_what_it_said() -> None:
    hook = FreshCardHook(shlex.join([sys.executable, "-c", "import sys; sys.exit('robot jammed')"]))
    with pytest.raises(FreshCardError, match=r"exited 1: robot jammed"):
        hook.insert("test_x")
    slow = FreshCardHook(shlex.join([sys.executable, "-c", "import time; time.sleep(5)"]), 0.2)
    with pytest.raises(FreshCardError, match=r"did not finish within 0\.2 s"):
        slow.insert("test_x")


def test_a_missing_program_is_said_in_one_line() -> None:
    with pytest.raises(FreshCardError, match="could not start"):
        FreshCardHook("/nonexistent/card-robot --insert").insert("test_x")


def test_no_option_no_hook_and_prompt_is_the_operator() -> None:
    assert parse_hook(None) is None
    assert parse_hook("  ") is None
    prompt = parse_hook("prompt")
    assert prompt is not None
    assert prompt.prompts
    assert "operator" in prompt.describe()
