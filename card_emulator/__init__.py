"""The emulated My Number card: file system, JPKI and card-info applets, PIN counters,
card files on disk, fault injection, and the vicc end of the vpcd wire."""

from __future__ import annotations

from .atr import ATR_PROFILES, CONTACT_ATR, atr_for_profile, contactless_type_b_atr
from .card import DEFINED_STATUS_WORDS, EmulatedCard
from .faults import CardLike, CardPulled, FaultProfile, FaultyCard, Latency, load_fault_profile
from .pin import AUTH_PIN, CARD_INFO_PIN, SIGN_PASSWORD, PinPolicy
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
from .vicc import ViccAttachment, parse_host_port

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
    "CardLike",
    "CardPulled",
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
    "ViccAttachment",
    "atr_for_profile",
    "contactless_type_b_atr",
    "load_card",
    "load_fault_profile",
    "parse_host_port",
    "save_card",
]
