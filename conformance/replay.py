"""Play a recorded APDU trace against the emulated card and find the first divergence.

A vendor's failing trace (JSON lines from a conformance run) reproduces here without their
hardware: every command is sent to a fresh emulated card and its answer compared with the one
recorded. Card-specific bytes (certificates, signatures) differ between cards, so by default
only the status words are compared; ``--exact`` compares whole responses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from card_emulator import EmulatedCard

__all__ = ["Divergence", "ReplayResult", "replay_trace"]


@dataclass(frozen=True, slots=True)
class Divergence:
    index: int
    command: str
    recorded: str
    emulated: str


@dataclass(frozen=True, slots=True)
class ReplayResult:
    commands: int
    divergence: Divergence | None


def replay_trace(path: Path, card: EmulatedCard, *, exact: bool = False) -> ReplayResult:
    """Send each recorded command to ``card``; stop at the first answer that differs."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    sent = 0
    for index, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            command = bytes.fromhex(entry["command"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name}: line {index}: not a trace entry ({exc})") from None
        recorded = entry.get("response")
        if recorded is None:  # the device vanished mid-command: nothing to compare
            continue
        answer = card.transmit(command).hex()
        sent += 1
        same = answer == recorded if exact else answer[-4:] == str(recorded)[-4:]
        if not same:
            return ReplayResult(sent, Divergence(index, entry["command"], recorded, answer))
    return ReplayResult(sent, None)
