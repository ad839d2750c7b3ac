"""The emulated My Number card: file system, JPKI and card-info applets, PIN counters,
card files on disk, fault injection, the vicc end of the vpcd wire, the card put on a wire
(:mod:`mynahil.card_emulator.wired`) and in an in-process reader (:func:`emulated_reader`)."""

from __future__ import annotations

from .atr import ATR_PROFILES, CONTACT_ATR, atr_for_profile, contactless_type_b_atr
from .card import DEFINED_STATUS_WORDS, EmulatedCard
from .faults import FaultProfile, FaultyCard, Latency, load_fault_profile
from .pin import AUTH_PIN, CARD_INFO_PIN, SIGN_PASSWORD, PinPolicy
from .reader import emulated_reader
from .state import (
    CardBusy,
    CardFile,
    CardFormatError,
    CardState,
    Holder,
    KeyCredential,
    MemoryStore,
    PinSlot,
    Sex,
    load_card,
    save_card,
)
from .vicc import ViccAttachment
from .wired import SocketTransport, VpcdPcscTransport, open_transport

__all__ = [
    "ATR_PROFILES",
    "AUTH_PIN",
    "CARD_INFO_PIN",
    "CONTACT_ATR",
    "DEFINED_STATUS_WORDS",
    "SIGN_PASSWORD",
    "CardBusy",
    "CardFile",
    "CardFormatError",
    "CardState",
    "EmulatedCard",
    "FaultProfile",
    "FaultyCard",
    "Holder",
    "KeyCredential",
    "Latency",
    "MemoryStore",
    "PinPolicy",
    "PinSlot",
    "Sex",
    "SocketTransport",
    "ViccAttachment",
    "VpcdPcscTransport",
    "atr_for_profile",
    "contactless_type_b_atr",
    "emulated_reader",
    "load_card",
    "load_fault_profile",
    "open_transport",
    "save_card",
]
