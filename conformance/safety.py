"""Keeping a real card safe: a transport that refuses to send anything that could cost a PIN try
the user did not give, and the rule for when destructive tests may run at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mynahil.jpki import AID
from mynahil.transports import Transport

__all__ = [
    "PIN_FILES",
    "GuardedTransport",
    "PinCounterNotFull",
    "PinGuardState",
    "UnsafeCommand",
    "allowed_banner",
    "destructive_verdict",
    "refusal_banner",
]

# PIN EF -> (what it is, how many tries a fresh one has)
PIN_FILES: Final = {
    0x0018: ("auth PIN", 3),
    0x001B: ("signing password", 5),
    0x0011: ("card-info PIN", 3),
}
# The AP each of those PIN EFs belongs to (EF 0011 of the card-face AP is another PIN).
_PIN_APS: Final = {
    0x0018: AID.JPKI.value,
    0x001B: AID.JPKI.value,
    0x0011: AID.CARD_INFO.value,
}

BANNER: Final = "!" * 78


class UnsafeCommand(RuntimeError):
    """The suite was about to send a command that could hurt a real card; it was not sent."""


class PinCounterNotFull(UnsafeCommand):
    """A PIN's counter shows fewer tries than a fresh one: the suite spends none of them.

    Not the card rejecting the user's PIN: only the tests that would enter this PIN are
    skipped (the plugin turns this into a skip), and the requirement that a fresh PIN shows
    all its tries (JPKI-PIN-001, -005, CINFO-001) fails on its own.
    """


@dataclass
class PinGuardState:
    """Shared by every test of a session: once the card rejects the user's PIN, no more tries."""

    secrets: frozenset[bytes]
    rejected: str = ""  # which PIN the card rejected; the session stops
    checked: set[int] = field(default_factory=set)  # PIN EFs whose counter was seen full
    short: dict[int, str] = field(default_factory=dict)  # PIN EFs seen with tries missing


class GuardedTransport(Transport):
    """For cards that are not emulated, outside destructive tests.

    A VERIFY with data goes out only if it carries a PIN the user gave (``--pin``,
    ``--sign-password``), only while that PIN's counter is full (so a wrong ``--pin`` costs one
    try, never a lockout), and never again once the card said the PIN is wrong. CHANGE
    REFERENCE DATA never goes out.
    """

    def __init__(self, inner: Transport, guard: PinGuardState) -> None:
        self.inner = inner
        self.guard = guard
        self.name = inner.name
        self._ef: int | None = None
        self._ap: bytes | None = None

    def connect(self) -> bytes:
        return self.inner.connect()

    def disconnect(self) -> None:
        self.inner.disconnect()

    def reset(self) -> bytes:
        self._ef = None
        self._ap = None
        return self.inner.reset()

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, apdu: bytes) -> bytes:
        ins = apdu[1] if len(apdu) > 1 else -1
        if ins == 0xA4 and len(apdu) >= 7 and apdu[2] == 0x02:
            self._ef = int.from_bytes(apdu[5:7], "big")
        elif ins == 0xA4 and len(apdu) >= 5 and apdu[2] == 0x04:
            self._ef, self._ap = None, bytes(apdu[5 : 5 + apdu[4]])
        elif ins == 0xA4:
            self._ef, self._ap = None, None
        elif ins == 0xB0 and len(apdu) >= 4 and apdu[2] & 0x80:
            self._ef = apdu[2] & 0x1F  # a read by short EF identifier makes that EF current
        if ins == 0x24:
            raise UnsafeCommand("CHANGE REFERENCE DATA is only sent in destructive tests")
        if ins == 0x20 and len(apdu) > 5:
            self._check_verify(apdu)
            response = self.inner.transmit(apdu)
            if response[-2] == 0x63 or response[-2:] == b"\x69\x84":
                what = PIN_FILES.get(self._ef or 0, ("PIN", 0))[0]
                self.guard.rejected = (
                    f"the card rejected the {what} given (SW {response[-2:].hex()})"
                )
            return response
        return self.inner.transmit(apdu)

    def _check_verify(self, apdu: bytes) -> None:
        if self.guard.rejected:
            raise UnsafeCommand(f"no more PIN entries: {self.guard.rejected}")
        value = apdu[5 : 5 + apdu[4]]
        if value not in self.guard.secrets:
            raise UnsafeCommand("refused to send a PIN other than the one given to a real card")
        p2 = apdu[3]
        # P2 80 is the current EF; 80|SFI names a PIN EF of the current AP directly.
        ef = self._ef if p2 == 0x80 else (p2 & 0x1F if p2 & 0x80 else None)
        if ef is None or ef not in PIN_FILES or _PIN_APS[ef] != self._ap:
            raise UnsafeCommand("refused to send a PIN before selecting a known PIN file")
        if ef in self.guard.checked:
            return
        if ef in self.guard.short:
            raise PinCounterNotFull(self.guard.short[ef])
        what, fresh = PIN_FILES[ef]
        answer = self.inner.transmit(bytes((0x00, 0x20, 0x00, p2)))
        sw = int.from_bytes(answer[-2:], "big")
        if sw & 0xFFF0 == 0x63C0 and sw & 0x0F < fresh:
            self.guard.short[ef] = (
                f"the {what} has only {sw & 0x0F} of {fresh} tries left: the suite will not "
                "spend one (enter the PIN once with the card's own software to reset it)"
            )
            raise PinCounterNotFull(self.guard.short[ef])
        self.guard.checked.add(ef)


def destructive_verdict(
    *, emulated_target: bool, allow_destructive: bool, atr_looks_emulated: bool
) -> str:
    """``run``, ``skip`` or ``refuse`` for the destructive tests of a session.

    A card counts as emulated when the target is one of ours (``card:*``), or when the user
    passed ``--allow-destructive`` and the card's ATR is one of our emulated profiles. With the
    flag and any other ATR the suite refuses: it cannot tell the card is not someone's real one.
    """
    if emulated_target:
        return "run"
    if not allow_destructive:
        return "skip"
    return "run" if atr_looks_emulated else "refuse"


def refusal_banner(atr: str, target: str) -> str:
    return (
        f"\n{BANNER}\n"
        f"  REFUSED: --allow-destructive on {target}, but the card's ATR {atr or '(none)'}\n"
        "  is not one of mynahil's emulated cards, so the suite cannot tell this card is\n"
        "  emulated. Destructive tests lock the PIN for good (only a municipal window can\n"
        "  unlock a real My Number card). Run without --allow-destructive.\n"
        f"{BANNER}"
    )


def allowed_banner(atr: str, target: str) -> str:
    return (
        f"\n{BANNER}\n"
        f"  DESTRUCTIVE TESTS WILL RUN on {target} (ATR {atr}): PIN lockout and PIN change.\n"
        "  The card's PIN will be LOCKED at the end of this run.\n"
        f"{BANNER}"
    )
