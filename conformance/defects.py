"""Deliberately defective emulated cards: the suite must fail each under the right requirement.

Each defect is a real misbehaviour seen in (or feared of) card and reader stacks, made on top
of the correct emulated card so everything else about it stays right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from card_emulator import CardState, EmulatedCard, PinSlot
from mynahil.jpki import AID

__all__ = ["DEFECTS", "Defect", "DefectiveCard"]

_SW_OK = b"\x90\x00"


class DefectiveCard(EmulatedCard):
    """An emulated card with one fault in how it answers."""

    def __init__(self, state: CardState, defect: str) -> None:
        if defect not in DEFECTS:
            raise ValueError(f"no defect {defect!r}; known: {', '.join(sorted(DEFECTS))}")
        super().__init__(state)
        self.defect = defect
        self._selected_fid: int | None = None

    def _restore_auth_pin(self) -> None:
        pin = self.state.pins[PinSlot.AUTH]
        self._save_pin(PinSlot.AUTH, self.state.with_pin(PinSlot.AUTH, pin.unblocked()))

    def transmit(self, raw: bytes) -> bytes:
        header = raw[:4]
        if header[:2] == b"\x00\xa4" and len(raw) >= 7:
            data = raw[5 : 5 + raw[4]]
            if header[2] == 0x02 and len(data) == 2:
                self._selected_fid = int.from_bytes(data, "big")
            if (
                self.defect == "counter_reset_on_reselect"
                and header[2] == 0x04
                and data == AID.JPKI.value
            ):
                self._restore_auth_pin()
        response = super().transmit(raw)
        body, sw = response[:-2], response[-2:]
        wrong = header[:2] == b"\x00\x20" and sw[0] == 0x63
        if self.defect == "no_lockout" and wrong and self.state.pins[PinSlot.AUTH].tries_left < 2:
            self._restore_auth_pin()  # forgets wrong PINs before the last try: never locks
        if self.defect == "sw_63c0_after_lockout" and sw == b"\x69\x84":
            return b"\x63\xc0"
        if self.defect == "truncated_reads" and header[:2] == b"\x00\xb0" and len(body) > 255:
            return body[:255] + sw
        if (
            self.defect == "sign_cert_without_password"
            and header[:2] == b"\x00\xb0"
            and sw == b"\x69\x82"
            and self._selected_fid == 0x0001
            and self.state.sign is not None
        ):
            offset = int.from_bytes(header[2:4], "big")
            le = raw[4] if len(raw) > 4 else 0
            return self.state.sign.certificate[offset : offset + (le or 256)] + _SW_OK
        if self.defect == "wrong_padding" and header[:2] == b"\x80\x2a" and sw == _SW_OK:
            assert self.state.auth is not None
            data = raw[5 : 5 + raw[4]]
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return self.state.auth.private_key.sign(data, pss, hashes.SHA256()) + _SW_OK
        return response


@dataclass(frozen=True, slots=True)
class Defect:
    name: str
    description: str
    caught_by: tuple[str, ...]  # the requirement IDs that must fail


DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("no_lockout", "never locks after 3 wrong PINs", ("JPKI-PIN-003",)),
        Defect("sw_63c0_after_lockout", "answers 63C0 instead of 6984 once blocked",
               ("JPKI-PIN-003",)),
        Defect("truncated_reads", "READ BINARY returns at most 255 bytes", ("JPKI-READ-001",)),
        Defect("wrong_padding", "signs with RSA-PSS instead of PKCS#1 v1.5", ("JPKI-SIG-001",)),
        Defect("sign_cert_without_password", "lets the signing certificate be read freely",
               ("JPKI-FILE-003",)),
        Defect("counter_reset_on_reselect", "gives PIN tries back when the AP is reselected",
               ("JPKI-PIN-004",)),
    )
}  # fmt: skip

DefectFactory = Callable[[CardState], DefectiveCard]
