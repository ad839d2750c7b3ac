"""Deliberately defective emulated cards and readers: the suite must fail each under the right
requirement.

Each defect is a real misbehaviour seen in (or feared of) card and reader stacks, made on top
of the correct emulated card so everything else about it stays right. :data:`MATRIX` is the
defect matrix as data: (target, the requirement IDs that must fail); :func:`full_matrix` adds
the operator and platform suites' rows.

A defective reader (:class:`DefectiveReader`, :data:`READER_DEFECTS`) is a relay on the vicc
wire, between pcscd's vpcd driver and a correct emulated card: it sees every command pcscd
passes down and every answer going back, and alters them as a faulty reader would. Its rows
(``card:reader-defect:NAME``) run through pcscd, so they need it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from mynahil.card_emulator import CardState, EmulatedCard, PinSlot
from mynahil.card_emulator.card import card_info_files, pkcs1_v15_sign_raw
from mynahil.card_emulator.filesystem import BinaryFile
from mynahil.card_emulator.state import match_b_value
from mynahil.jpki import AID, CardInfoFile
from mynahil.transports.base import CardLike

from .operator_defects import OPERATOR_DEFECTS

__all__ = [
    "CORRECT_TARGETS",
    "DEFECTS",
    "MATRIX",
    "READER_DEFECTS",
    "Defect",
    "DefectiveCard",
    "DefectiveReader",
    "MatrixRow",
    "full_matrix",
]

_SW_OK = b"\x90\x00"
_OTHER_CARD_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")  # a FeliCa-ish ATR


class DefectiveCard(EmulatedCard):
    """An emulated card with one fault in how it answers."""

    def __init__(self, state: CardState, defect: str) -> None:
        if defect not in DEFECTS:
            raise ValueError(f"no defect {defect!r}; known: {', '.join(sorted(DEFECTS))}")
        super().__init__(state)
        self.defect = defect
        self._selected_fid: int | None = None
        self._selected_aid = b""
        self._resets = 0
        if defect == "wrong_atr":
            self.atr = _OTHER_CARD_ATR
        if defect == "sign_password_four_tries":  # issued with one try of five already gone
            pin = state.pins[PinSlot.SIGN]
            self._save_pin(PinSlot.SIGN, state.with_pin(PinSlot.SIGN, pin.charged()))
        info = self._apps[AID.CARD_INFO.value].files
        if defect == "no_df21":  # EF 0002 as cards without the offsets header would hold it
            old = info[CardInfoFile.BASIC_INFO]
            assert isinstance(old, BinaryFile)
            content = card_info_files(state.holder, offsets=False)[1]
            info[CardInfoFile.BASIC_INFO] = BinaryFile(old.fid, content, old.read_pins)
        if defect == "bad_info_signature":  # the last byte of DF33 altered
            old = info[CardInfoFile.SIGNATURE]
            assert isinstance(old, BinaryFile)
            content = old.content[:-1] + bytes((old.content[-1] ^ 0x01,))
            info[CardInfoFile.SIGNATURE] = BinaryFile(old.fid, content, old.read_pins)

    def reset(self) -> bytes:
        self._resets += 1
        if self.defect == "keeps_state_across_reset":
            return self.atr  # the verified PIN and the selected AP and EF stay
        self._selected_fid, self._selected_aid = None, b""
        if self.defect == "atr_changes_after_reset" and self._resets > 1:
            self.atr = _OTHER_CARD_ATR  # the first reset (power-up) is right, later ones not
        return super().reset()

    def _restore_pin(self, slot: PinSlot) -> None:
        pin = self.state.pins[slot]
        self._save_pin(slot, self.state.with_pin(slot, pin.unblocked()))

    def _answer_early(self, raw: bytes) -> bytes | None:
        """The defects that answer a command themselves, before the card sees it."""
        header, defect = raw[:4], self.defect
        if (
            defect == "wrong_length_pin_free"
            and header[:2] == b"\x00\x20"
            and len(raw) > 5
            and raw[4] != 4
            and self._selected_fid == 0x0018
        ):
            return b"\x67\x00"  # refused before the counter is charged
        key = self.state.auth
        if (
            defect == "signs_without_key_ef"
            and header[:2] == b"\x80\x2a"
            and PinSlot.AUTH in self._verified
            and key is not None
            and self._selected_fid != 0x0017
        ):
            return pkcs1_v15_sign_raw(key.private_key, raw[5 : 5 + raw[4]]) + _SW_OK
        return None

    def _after_verify(self, sw: bytes, in_info_pin: bool, info_before: int) -> None:
        """The defects in what a VERIFY with data leaves behind."""
        defect = self.defect
        if defect == "sign_password_unlocks_auth" and sw == _SW_OK and self._selected_fid == 0x1B:
            self._verified.add(PinSlot.AUTH)
        if defect == "info_pin_never_reset" and sw == _SW_OK and in_info_pin:
            pin = self.state.pins[PinSlot.CARD_INFO]
            for _ in range(pin.tries_left - info_before):
                pin = pin.charged()
            self._save_pin(PinSlot.CARD_INFO, self.state.with_pin(PinSlot.CARD_INFO, pin))
        if defect == "info_pin_shares_auth_counter" and in_info_pin:
            shared = self.state.pins[PinSlot.CARD_INFO]  # one counter behind both PINs
            auth = replace(self.state.pins[PinSlot.AUTH], tries_left=shared.tries_left)
            self._save_pin(PinSlot.AUTH, self.state.with_pin(PinSlot.AUTH, auth))

    def transmit(self, raw: bytes) -> bytes:  # one branch per defect, on purpose
        header, defect = raw[:4], self.defect
        if header[:2] == b"\x00\xa4" and len(raw) >= 7:
            data = raw[5 : 5 + raw[4]]
            if header[2] == 0x02 and len(data) == 2:
                self._selected_fid = int.from_bytes(data, "big")
            if header[2] == 0x04:
                self._selected_fid, self._selected_aid = None, bytes(data)
            if (
                defect == "counter_reset_on_reselect"
                and header[2] == 0x04
                and data == AID.JPKI.value
            ):
                self._restore_pin(PinSlot.AUTH)
        if defect == "no_short_ef_ids" and (
            (header[:2] == b"\x00\xb0" and header[2] & 0x80)
            or (header[1:2] in (b"\x20", b"\x24") and header[3] & 0x80 and header[3] != 0x80)
        ):
            return b"\x6a\x86"  # what this emulator answered before issue 14
        if defect == "pin_b_ignores_expiry" and header[:2] == b"\x00\x20" and len(raw) == 19:
            # 照合番号B compared on birth date and security code only: the year is patched in
            state = self.state
            right = match_b_value(state.holder, state.card_expires, state.security_code)
            given = raw[5:19].decode("ascii", "replace")
            if given[:6] == right[:6] and given[10:] == right[10:]:
                raw = raw[:5] + right.encode("ascii")
        if defect == "signs_without_pin" and header[:2] == b"\x80\x2a":
            self._verified.update((PinSlot.AUTH, PinSlot.SIGN))  # forgets to check
        early = self._answer_early(raw)
        if early is not None:
            return early
        if defect == "channels_above_3_served" and raw[0] & 0xC0 == 0x40:
            raw = bytes([raw[0] & 0x20]) + raw[1:]  # channels 4-19 served as the basic channel
        in_info_pin = self._selected_aid == AID.CARD_INFO.value and self._selected_fid == 0x0011
        tries_before = self.state.pins[PinSlot.AUTH].tries_left
        info_before = self.state.pins[PinSlot.CARD_INFO].tries_left
        response = super().transmit(raw)
        body, sw = response[:-2], response[-2:]
        verify_with_data = header[:2] == b"\x00\x20" and len(raw) > 5
        near_lockout = self.state.pins[PinSlot.AUTH].tries_left < 2
        if defect == "no_lockout" and verify_with_data and sw[0] == 0x63 and near_lockout:
            self._restore_pin(PinSlot.AUTH)  # forgets wrong PINs before the last try
        if defect == "no_reset_on_correct_pin" and verify_with_data and sw == _SW_OK:
            pin = self.state.pins[PinSlot.AUTH]
            if self._selected_fid == 0x0018 and pin.tries_left > tries_before:
                # keeps the count of earlier wrong entries after a correct one
                for _ in range(pin.tries_left - tries_before):
                    pin = pin.charged()
                self._save_pin(PinSlot.AUTH, self.state.with_pin(PinSlot.AUTH, pin))
        if verify_with_data:
            self._after_verify(sw, in_info_pin, info_before)
        if defect == "sw_63c0_after_lockout" and sw == b"\x69\x84":
            return b"\x63\xc0"
        if defect == "truncated_reads" and header[:2] == b"\x00\xb0" and len(body) > 255:
            return body[:255] + sw
        if defect == "offset_beyond_file_ok" and sw == b"\x6b\x00":
            return _SW_OK
        if (
            defect in ("sign_cert_without_password", "sign_cert_after_auth_pin")
            and header[:2] == b"\x00\xb0"
            and sw == b"\x69\x82"
            and self._selected_fid == 0x0001
            and self._selected_aid == AID.JPKI.value
            and self.state.sign is not None
            and (defect == "sign_cert_without_password" or PinSlot.AUTH in self._verified)
        ):
            offset = int.from_bytes(header[2:4], "big")
            le = raw[4] if len(raw) > 4 else 0
            return self.state.sign.certificate[offset : offset + (le or 256)] + _SW_OK
        if defect == "wrong_padding" and header[:2] == b"\x80\x2a" and sw == _SW_OK:
            assert self.state.auth is not None
            data = raw[5 : 5 + raw[4]]
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return self.state.auth.private_key.sign(data, pss, hashes.SHA256()) + _SW_OK
        if defect == "logical_channel_ignored" and sw == b"\x68\x81":
            return super().transmit(bytes([raw[0] & 0xFC]) + raw[1:])
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
        Defect("no_reset_on_correct_pin", "a correct PIN leaves earlier wrong entries counted",
               ("JPKI-PIN-002", "SPEC-CARD-001")),
        Defect("wrong_atr", "introduces itself with another card's ATR", ("JPKI-ATR-001",)),
        Defect("offset_beyond_file_ok", "answers 9000 with no data past the end of a file",
               ("JPKI-READ-002",)),
        Defect("signs_without_pin", "signs without a verified PIN", ("JPKI-SIG-002",)),
        Defect("logical_channel_ignored", "serves logical channels as if they were channel 0",
               ("JPKI-SEL-005",)),
        Defect("no_short_ef_ids", "answers 6A86 to READ BINARY and VERIFY by short EF identifier",
               ("JPKI-SFI-001", "JPKI-SFI-002", "JPKI-READ-005")),
        Defect("no_df21", "the card-info AP's EF 0002 has no DF21 offsets header",
               ("JPKI-CINFO-004",)),
        Defect("bad_info_signature", "the card-info AP's EF 0003 signature does not verify",
               ("JPKI-CINFO-005",)),
        Defect("sign_password_four_tries", "a fresh signing password shows 4 tries, not 5",
               ("JPKI-PIN-005",)),
        Defect("sign_password_unlocks_auth", "the signing password also unlocks the auth key",
               ("JPKI-SIG-002",)),
        Defect("signs_without_key_ef", "signs with the auth key when no key EF is selected",
               ("JPKI-SIG-002",)),
        Defect("sign_cert_after_auth_pin", "shows the signing certificate after the auth PIN",
               ("JPKI-FILE-003",)),
        Defect("keeps_state_across_reset", "keeps the verified PIN and selected AP across a reset",
               ("JPKI-SIG-004",)),
        Defect("atr_changes_after_reset", "answers a reset with another card's ATR",
               ("JPKI-ATR-001",)),
        Defect("info_pin_never_reset", "a correct card-info PIN leaves its wrong entries counted",
               ("JPKI-CINFO-001",)),
        Defect("info_pin_shares_auth_counter", "the card-info PIN counts on the auth PIN's counter",
               ("JPKI-CINFO-001",)),
        Defect("wrong_length_pin_free", "a PIN of the wrong length costs no try (6700)",
               ("JPKI-PIN-002", "SPEC-CARD-001")),
        Defect("channels_above_3_served", "serves logical channels 4-19 as the basic channel",
               ("JPKI-SEL-005",)),
        Defect("pin_b_ignores_expiry", "照合番号B accepts any card expiry year",
               ("JPKI-CINFO-008",)),
    )
}  # fmt: skip


READER_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("truncates_at_256", "cuts every answer to its first 256 bytes (a 256-byte buffer: "
               "256 data bytes + SW lose their last two bytes)", ("JPKI-IF-001",)),
        Defect("refuses_extended", "answers 6700 to every extended-length APDU without passing "
               "it to the card", ("JPKI-READ-005",)),
        Defect("mishandles_61xx", "hands the host 61xx for a command with data and Le instead "
               "of the answer, then reads GET RESPONSE's Le 00 as 0 bytes", ("JPKI-IF-001",)),
        Defect("slow_signing", "stalls each signing command for longer than the device "
               "profile's whole time budget", ("JPKI-TIME-001",)),
    )
}  # fmt: skip


class DefectiveReader:
    """A relay on the vicc wire with one reader defect: the card it carries is correct.

    It stands where a reader's firmware stands, between pcscd's vpcd driver and the card
    (``card`` may be a :class:`~mynahil.conformance.targets.CardSlot` whose card changes per test).
    ``budget_ms`` is the device profile's time budget (the ``slow_signing`` stall exceeds it).
    """

    def __init__(self, card: CardLike, defect: str, *, budget_ms: float = 1000.0) -> None:
        if defect not in READER_DEFECTS:
            known = ", ".join(sorted(READER_DEFECTS))
            raise ValueError(f"no reader defect {defect!r}; known: {known}")
        self.card = card
        self.defect = defect
        self.stall_s = budget_ms * 1.5 / 1000
        self._held = b""  # mishandles_61xx: the answer it kept back

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def reset(self) -> bytes:
        self._held = b""
        return self.card.reset()

    def transmit(self, raw: bytes) -> bytes:
        defect = self.defect
        extended = len(raw) >= 7 and raw[4] == 0
        if defect == "refuses_extended" and extended:
            return b"\x67\x00"
        if defect == "mishandles_61xx" and raw[1:2] == b"\xc0" and len(raw) == 5:
            held, self._held = self._held, b""
            le = raw[4]  # the defect: Le 00 taken for 0 bytes, not 256
            return held[:le] + _SW_OK if held else b"\x69\x85"
        if defect == "slow_signing" and raw[:2] == b"\x80\x2a":
            time.sleep(self.stall_s)
        response = self.card.transmit(raw)
        if defect == "truncates_at_256" and len(response) > 256:
            return response[:256]
        case_4 = len(raw) > 5 and not extended and len(raw) == 6 + raw[4]
        if defect == "mishandles_61xx" and case_4 and len(response) > 2:
            self._held = response[:-2]
            return bytes((0x61, len(self._held) % 256))
        return response


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One row of the defect matrix: a target and the requirements that must fail (none: the
    target is correct and must pass every selected requirement)."""

    target: str
    must_fail: tuple[str, ...]
    needs: str = ""  # "pcsc": only where pcscd is there

    @property
    def correct(self) -> bool:
        return not self.must_fail


CORRECT_TARGETS: list[MatrixRow] = [
    MatrixRow("card:inproc", ()),
    MatrixRow("card:vpcd", (), "pcsc"),
]

MATRIX: list[MatrixRow] = [
    *CORRECT_TARGETS,
    *(MatrixRow(f"card:defect:{name}", d.caught_by) for name, d in sorted(DEFECTS.items())),
    *(
        MatrixRow(f"card:reader-defect:{name}", d.caught_by, "pcsc")
        for name, d in sorted(READER_DEFECTS.items())
    ),
]


def full_matrix() -> list[MatrixRow]:
    """The card rows, then the operator and platform suites' rows (the platform's defects
    imported late: they bring the reference platform with them)."""
    from .platform_defects import PLATFORM_DEFECTS

    return [
        *MATRIX,
        MatrixRow("operator:sample", ()),
        MatrixRow("platform:sample", ()),
        *(MatrixRow(f"operator:defect:{n}", d[1]) for n, d in sorted(OPERATOR_DEFECTS.items())),
        *(MatrixRow(f"platform:defect:{n}", d[1]) for n, d in sorted(PLATFORM_DEFECTS.items())),
    ]
