"""Destructive tests through a reader the harness does not hold (``pcsc:``, ``phone:``).

The harness can give every test of an emulated target a new card; through a real reader there
is one card, and the first lockout test locks it. So destructive tests run last, the one that
locks a PIN for good last of all, and each starts only on a card whose PIN counters are all
full. A vendor with several test cards passes ``--conformance-fresh-card``: before every
destructive test the harness asks for a fresh one, either by running a command (a card robot,
a lab script) or by asking the operator at the terminal (``prompt``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Final

from mynahil.apdu import CommandApdu
from mynahil.jpki import AID
from mynahil.transports import Transport

from .safety import PIN_FILES

__all__ = ["PROMPT", "FreshCardError", "FreshCardHook", "parse_hook", "spent_tries"]

PROMPT: Final = "prompt"
_PIN_APS: Final = {0x0018: AID.JPKI, 0x001B: AID.JPKI, 0x0011: AID.CARD_INFO}


class FreshCardError(RuntimeError):
    """The hook could not put a fresh card in the reader; the message says why."""


@dataclass(frozen=True, slots=True)
class FreshCardHook:
    """How the harness gets a fresh test card: a command line (split as a shell would, run
    without one; ``sh -c '…'`` for pipes), or ``prompt`` (the operator swaps the card and
    presses Enter at the terminal)."""

    command: str
    timeout_s: float = 300.0

    @property
    def prompts(self) -> bool:
        return self.command == PROMPT

    def describe(self) -> str:
        if self.prompts:
            return "the operator inserted a fresh test card before each (prompted at the terminal)"
        return f"a fresh test card before each, inserted by `{self.command}`"

    def insert(self, test: str) -> None:
        """Return once a fresh card is in the reader; :class:`FreshCardError` otherwise."""
        if self.prompts:
            self._ask(test)
            return
        env = {**os.environ, "MYNAHIL_CONFORMANCE_TEST": test}
        try:
            done = subprocess.run(
                shlex.split(self.command), env=env, capture_output=True, text=True,
                timeout=self.timeout_s, check=False,
            )  # fmt: skip
        except OSError as exc:
            raise FreshCardError(f"`{self.command}` could not start: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise FreshCardError(
                f"`{self.command}` did not finish within {self.timeout_s:g} s"
            ) from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise FreshCardError(
                f"`{self.command}` exited {done.returncode}" + (f": {said[-1]}" if said else "")
            )

    def _ask(self, test: str) -> None:
        # pytest captures stdin and stdout: talk to the operator's terminal itself.
        try:
            with open("/dev/tty", "r+", encoding="utf-8") as tty:
                tty.write(
                    f"\n>>> {test} is destructive (it may lock the card's PIN).\n"
                    ">>> Insert a FRESH TEST CARD (the PINs given, every counter full) and "
                    "press Enter: "
                )
                tty.flush()
                tty.readline()
        except OSError as exc:
            raise FreshCardError(
                f"--conformance-fresh-card prompt needs a terminal ({exc.strerror}); "
                "give a command instead"
            ) from None


def spent_tries(transport: Transport) -> list[str]:
    """Every PIN of the card whose counter is not full ("auth PIN: 0 of 3 tries (6984)").

    Asks with VERIFY without data (the retry query), which costs no try; a PIN whose AP or EF
    the card lacks is not counted.
    """
    spent: list[str] = []
    for ef, (what, fresh) in PIN_FILES.items():
        aid = _PIN_APS[ef]
        if _sw(transport, CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid.value)) != 0x9000:
            continue
        if _sw(transport, CommandApdu(0x00, 0xA4, 0x02, 0x0C, ef.to_bytes(2, "big"))) != 0x9000:
            continue
        sw = _sw(transport, CommandApdu(0x00, 0x20, 0x00, 0x80, b""))
        if sw == 0x6984:
            spent.append(f"{what}: blocked (6984)")
        elif sw & 0xFFF0 == 0x63C0 and sw & 0x0F < fresh:
            spent.append(f"{what}: {sw & 0x0F} of {fresh} tries ({sw:04X})")
    return spent


def _sw(transport: Transport, command: CommandApdu) -> int:
    return int.from_bytes(transport.transmit(command.to_bytes())[-2:], "big")


def parse_hook(text: str | None) -> FreshCardHook | None:
    """The option's value as a hook; None when not given."""
    return FreshCardHook(text.strip()) if text and text.strip() else None
