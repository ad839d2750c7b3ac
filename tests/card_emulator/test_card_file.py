"""A card on disk: round trip, clear errors, the reader's lock, and no torn card after a kill."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.card_emulator import (
    CardBusy,
    CardFile,
    CardFormatError,
    CardState,
    PinSlot,
    load_card,
    save_card,
)
from tests.support import PIN


def test_round_trip_keeps_everything(card_path: Path, card_state: CardState) -> None:
    loaded = load_card(card_path)
    assert loaded.holder == card_state.holder
    assert loaded.auth is not None
    assert card_state.auth is not None
    assert loaded.auth.certificate == card_state.auth.certificate
    assert (
        loaded.auth.private_key.private_numbers() == card_state.auth.private_key.private_numbers()
    )
    assert {s: p.tries_left for s, p in loaded.pins.items()} == {
        s: s.policy.max_tries for s in PinSlot
    }
    assert loaded.security_code == card_state.security_code
    assert loaded.signed == card_state.signed
    assert loaded.pins[PinSlot.AUTH].matches(PIN.encode())
    # Never in clear, in hex or in base64 as any value of the file. (A substring test would be
    # flaky: four digits turn up by chance inside the hex and base64 of keys and digests.)
    clear_forms = {PIN, PIN.encode().hex(), base64.b64encode(PIN.encode()).decode()}
    assert not clear_forms & set(_string_leaves(json.loads(card_path.read_bytes())))
    assert set(json.loads(card_path.read_bytes())["pins"]["auth"]) == {
        "salt",
        "digest",
        "tries_left",
    }


def _string_leaves(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("holder"), "missing field 'holder'"),
        (lambda d: d["holder"].update(birth_date="1990-02-30"), "holder.birth_date: not a date"),
        (lambda d: d.update(format="other/1"), "not a mynahil-card/1 file"),
        (lambda d: d["pins"]["auth"].update(tries_left=9), "pins.auth.tries_left: must be 0..3"),
        (lambda d: d["holder"].update(sex="x"), "holder.sex: must be 1, 2 or 9"),
        (lambda d: d["auth"].update(private_key="junk"), "auth: unreadable key"),
    ],
)
def test_broken_files_name_the_field(card_path: Path, mutate: object, message: str) -> None:
    data = json.loads(card_path.read_text())
    mutate(data)  # type: ignore[operator]
    card_path.write_text(json.dumps(data))
    with pytest.raises(CardFormatError, match=message) as err:
        load_card(card_path)
    assert str(card_path) in str(err.value)


def test_not_json_and_missing(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(CardFormatError, match="not JSON"):
        load_card(tmp_path / "x.json")
    with pytest.raises(CardFormatError, match="no such card file"):
        load_card(tmp_path / "missing.json")


def test_a_card_in_a_reader_is_locked(card_path: Path) -> None:
    with CardFile(card_path), pytest.raises(CardBusy, match="in use"):
        CardFile(card_path)
    CardFile(card_path).close()  # free again once released


WRITER = """
import sys
from pathlib import Path
from mynahil.card_emulator import load_card, save_card, PinSlot
path = Path(sys.argv[1])
state = load_card(path)
pin = state.pins[PinSlot.AUTH].unblocked()  # 3 tries; charged() gives 2
i = 0
while True:
    i += 1
    save_card(state.with_pin(PinSlot.AUTH, pin.charged() if i % 2 else pin), path)
"""


def test_killed_mid_write_leaves_a_whole_card(card_path: Path) -> None:
    """SIGKILL at random moments while the card is rewritten: it always loads, old or new."""
    rng = random.Random(5)
    for _ in range(15):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(card_path)], env=os.environ.copy()
        )
        time.sleep(0.15 + rng.random() * 0.15)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        state = load_card(card_path)
        assert state.pins[PinSlot.AUTH].tries_left in (2, 3)
    leftovers = [p for p in card_path.parent.iterdir() if p.name.endswith(".tmp")]
    # a temp file may survive a kill, but it is never the card and never loaded as one
    assert all(p.name.startswith(".") for p in leftovers)


def test_save_replaces_atomically(card_path: Path, card_state: CardState) -> None:
    before = os.stat(card_path).st_ino
    save_card(card_state.with_pin(PinSlot.AUTH, card_state.pins[PinSlot.AUTH].charged()), card_path)
    assert os.stat(card_path).st_ino != before  # a new file renamed over the old one
    assert load_card(card_path).pins[PinSlot.AUTH].tries_left == 2
