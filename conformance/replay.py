"""Play a recorded APDU trace against the emulated card and find the first divergence.

A vendor's failing trace (JSON lines from a conformance run) reproduces here without their
hardware: every command is sent to a fresh emulated card (or a defective one) and its answer
compared with the one recorded. Card-specific bytes (certificates, signatures) differ between
cards, so by default only the status words are compared; ``exact`` compares whole responses.
Resets recorded in the trace are applied; a PIN the recorder masked is replaced by the emulated
card's own (it was the card's right PIN: the PIN guard sends no other).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mynahil.card_emulator import EmulatedCard, FaultyCard

from .safety import PIN_FILES
from .targets import EMULATED_PASSWORD, EMULATED_PIN

__all__ = ["Divergence", "ReplayResult", "replay_trace"]


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the card under test and the emulated card first answered differently."""

    line: int  # 1-based line of the trace file
    command: str
    recorded: str
    emulated: str

    def describe(self) -> str:
        from mynahil.apdu import describe_sw

        def sw(hex_response: str) -> str:
            return describe_sw(int(hex_response[-4:], 16)) if len(hex_response) >= 4 else "-"

        return (
            f"line {self.line}: command {self.command.upper()}\n"
            f"  recorded {self.recorded[-4:].upper()} {sw(self.recorded)} "
            f"({len(self.recorded) // 2 - 2} data bytes)\n"
            f"  emulated {self.emulated[-4:].upper()} {sw(self.emulated)} "
            f"({len(self.emulated) // 2 - 2} data bytes)"
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    commands: int
    divergence: Divergence | None

    @property
    def reproduced(self) -> bool:
        return self.divergence is None


def _entries(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path.name}: line {number}: not JSON ({exc})") from None
        if not isinstance(entry, dict) or ("command" not in entry and "event" not in entry):
            raise ValueError(f"{path.name}: line {number}: not a trace entry")
        out.append((number, entry))
    return out


def _pin_file(verify: bytes, selected_ef: int | None) -> int | None:
    """The PIN EF a VERIFY checks: named by its short identifier in P2 (``80 | SFI``, as
    jsapdu sends it, without a SELECT), otherwise the EF selected last."""
    p2 = verify[3] if len(verify) > 3 else 0
    return p2 & 0x1F if p2 > 0x80 and p2 & 0x1F else selected_ef


def _unmask(command: bytes, selected_ef: int | None) -> bytes:
    """A masked VERIFY gets the emulated card's right PIN for the PIN file selected."""
    value = EMULATED_PASSWORD if selected_ef == 0x001B else EMULATED_PIN
    data = value.encode("ascii")
    return command[:4] + bytes([len(data)]) + data


def replay_trace(
    path: Path, card: EmulatedCard | FaultyCard, *, exact: bool = False
) -> ReplayResult:
    """Send each recorded command to ``card``; stop at the first answer that differs."""
    sent = 0
    selected_ef: int | None = None
    card.reset()
    for number, entry in _entries(path):
        if entry.get("event") in ("connect", "reset"):
            card.reset()
            continue
        try:
            command = bytes.fromhex(str(entry["command"]))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path.name}: line {number}: bad command ({exc})") from None
        if command[1:2] == b"\xa4" and len(command) >= 7 and command[2] == 0x02:
            selected_ef = int.from_bytes(command[5:7], "big")
        if entry.get("redacted") == "pin":
            pin_file = _pin_file(command, selected_ef)
            if pin_file not in PIN_FILES:
                raise ValueError(f"{path.name}: line {number}: a masked PIN for no PIN file")
            command = _unmask(command, pin_file)
        recorded = entry.get("response")
        if recorded is None:  # the device vanished mid-command
            continue
        answer = card.transmit(command).hex()
        sent += 1
        same = answer == recorded if exact else answer[-4:] == str(recorded)[-4:]
        if not same:
            return ReplayResult(sent, Divergence(number, str(entry["command"]), recorded, answer))
    return ReplayResult(sent, None)
