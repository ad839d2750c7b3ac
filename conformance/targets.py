"""What the suite runs against: a target spec, its device profile, and a card per test.

A target spec is ``KIND[:REST]``. Each kind is registered in :data:`TARGET_KINDS` with the
suites it selects (``card``, ``platform``, ``operator``), whether its card is emulated (only
those may be hurt by destructive tests), and how to build it:

=========================  ===================================================================
``card:inproc``            the emulated card in this process
``card:vpcd``              the emulated card attached to pcscd's vpcd driver, read through PC/SC
``card:defect:NAME``       a deliberately defective emulated card (``mynahil.conformance.defects``)
``card:reader-defect:NAME``  the correct emulated card behind pcscd's vpcd and a defective
                           reader: a relay on the vicc wire (``mynahil.conformance.defects``)
``realistic:inproc``       the emulated card treated as a real one (PIN guard, no destructive
``realistic:defect:NAME``  tests unless allowed): proves the suite is safe for real cards
``pcsc[:READER]``          a real PC/SC reader with a real or test card
``phone[:HOST:PORT]``      a phone running vsmartcard's Remote Smart Card Reader, connecting to
                           the harness's vpcd listener
``platform:sample|URL``    a MyKey platform (the platform suite)
``operator:sample|URL``    a payment operator (the operator suite); a URL is a vendor's service,
                           described by an operator profile (``--operator-profile``)
=========================  ===================================================================
"""

from __future__ import annotations

import random
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Self

from cryptography import x509
from pydantic import Field, model_validator

from mynahil.card_emulator import (
    CardState,
    EmulatedCard,
    FaultyCard,
    load_fault_profile,
    open_transport,
)
from mynahil.card_emulator.atr import ATR_PROFILES
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.config import (
    Checked,
    ConfigModel,
    Name,
    OneOf,
    Positive,
    Text,
    at_key,
    problem,
    validated,
)
from mynahil.files import read_toml
from mynahil.paths import scenarios_dir
from mynahil.reference_impl.jlis import JlisCA, KeyPool, issue_card, random_holder
from mynahil.transports import Transport
from mynahil.transports.inproc import InProcessTransport

from .defects import DEFECTS, READER_DEFECTS, DefectiveCard, DefectiveReader
from .operator_defects import OPERATOR_DEFECTS

__all__ = [
    "EMULATED_PASSWORD",
    "EMULATED_PIN",
    "TARGET_KINDS",
    "CardSlot",
    "DeviceProfile",
    "Target",
    "TargetError",
    "TargetKind",
    "atr_looks_emulated",
    "load_device_profile",
    "parse_target",
    "register_target_kind",
]

EMULATED_PIN: Final = DEFAULT_PIN
EMULATED_PASSWORD: Final = DEFAULT_PASSWORD
INTERFACES: Final = ("contact", "contactless")
APPLICATIONS: Final = ("jpki", "card-info", "card-face")


class TargetError(ValueError):
    """A target spec or device profile the suite cannot use; the message says what to fix."""


# --- device profiles -------------------------------------------------------------------------

IDENTITY_FIELDS: Final = ("vendor", "model", "serial", "firmware", "lab", "operator")


class HexBytes(Checked):
    """Whole bytes of hex digits (spaces and colons allowed between them), upper-cased."""

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise problem(f"must be a string of hex digits, got {value!r}")
        text = value.replace(" ", "").replace(":", "").upper()
        if not re.fullmatch(r"([0-9A-F]{2})*", text):
            raise problem(f"must be whole bytes of hex digits, got {value!r}")
        return text

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^([0-9A-Fa-f]{2}[ :]*)*$"}


def _text(description: str) -> Any:
    return Field("", description=description)


class DeviceProfileFile(ConfigModel):
    """A device profile (``scenarios/devices/*.toml``): what the device under test is and what
    it must meet."""

    name: Name = Field(description="the device's name, as the report shows it")
    target: Text = _text('a target spec such as pcsc:"Reader 00 00" (optional)')
    interface: Annotated[str, OneOf(*INTERFACES)] = Field(
        "contact", description="contact or contactless"
    )
    expected_atr: Annotated[str, HexBytes()] = _text("the ATR in hex, empty for any")
    atr_mask: Annotated[str, HexBytes()] = _text(
        "hex, as long as expected_atr: FF bits must match, 00 bits are free"
    )
    budget_ms: Annotated[float, Positive()] = Field(
        5000.0, description="the time budget of a whole MyKey read and sign, in ms"
    )
    faults: Text = _text("a fault profile of scenarios/faults (emulated targets only)")
    applications: list[Annotated[str, OneOf(*APPLICATIONS)]] = Field(
        default_factory=lambda: ["jpki"],
        min_length=1,
        description='the APs the device must read: a list of "jpki", "card-info", "card-face"',
    )
    description: Text = _text("free text")
    vendor: Text = _text("who makes the device (shown in the report)")
    model: Text = _text("the device's model")
    serial: Text = _text("the unit's serial number")
    firmware: Text = _text("the firmware or app version under test")
    lab: Text = _text("where the run was made")
    operator: Text = _text("who made the run")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.atr_mask and len(self.atr_mask) != len(self.expected_atr):
            raise at_key(
                "atr_mask",
                f"{len(self.atr_mask) // 2} bytes, but expected_atr has "
                f"{len(self.expected_atr) // 2}; they must be as long",
            )
        if self.target:
            try:  # a placeholder device: the bundled profile may be the one being loaded
                parse_target(self.target, DeviceProfile(name="validation only"))
            except TargetError as exc:
                raise at_key("target", str(exc)) from None
        if self.faults and not (scenarios_dir() / "faults" / f"{self.faults}.toml").exists():
            try:
                load_fault_profile(self.faults)
            except ValueError as exc:
                raise at_key("faults", str(exc)) from None
        return self


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What the device under test is and what it must meet (``scenarios/devices/*.toml``)."""

    name: str
    interface: str = "contact"
    expected_atr: str = ""  # hex, upper case; "" accepts any ATR
    atr_mask: str = ""  # hex, same length as expected_atr; "" means every bit matters
    budget_ms: float = 5000.0
    target: str = ""
    faults: str = ""
    description: str = ""
    # The APs the device must support (their requirements are skipped for the others).
    applications: tuple[str, ...] = ("jpki",)
    # Who and what exactly was tested (vendor, model, serial, firmware, lab, operator).
    identity: tuple[tuple[str, str], ...] = ()

    @property
    def contactless(self) -> bool:
        return self.interface == "contactless"

    def atr_matches(self, atr: bytes) -> bool:
        """Whether ``atr`` is the expected one (under the mask); any ATR if none is expected."""
        if not self.expected_atr:
            return True
        expected = bytes.fromhex(self.expected_atr)
        mask = bytes.fromhex(self.atr_mask) if self.atr_mask else b"\xff" * len(expected)
        return len(atr) == len(expected) and all(
            (a & m) == (e & m) for a, e, m in zip(atr, expected, mask, strict=True)
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], source: str) -> DeviceProfile:
        """Validated: an unknown field or a wrong value is an error naming the field."""
        file = validated(DeviceProfileFile, data, TargetError, source=source)
        return cls(
            name=file.name,
            interface=file.interface,
            expected_atr=file.expected_atr,
            atr_mask=file.atr_mask,
            budget_ms=file.budget_ms,
            target=file.target,
            faults=file.faults,
            description=file.description,
            applications=tuple(file.applications),
            identity=tuple(
                (key, getattr(file, key).strip())
                for key in IDENTITY_FIELDS
                if getattr(file, key).strip()
            ),
        )


def load_device_profile(path: Path) -> DeviceProfile:
    """A device profile file, or a :class:`TargetError` saying what is wrong with it."""
    return DeviceProfile.from_mapping(read_toml(path, TargetError), path.name)


def bundled_profile(name: str) -> DeviceProfile:
    return load_device_profile(scenarios_dir() / "devices" / f"{name}.toml")


def _fault_profile_path(name: str, source: str) -> str:
    path = scenarios_dir() / "faults" / f"{name}.toml"
    if path.exists():
        return str(path)
    try:
        load_fault_profile(name)
    except ValueError as exc:
        raise TargetError(f"{source}: faults: {exc}") from None
    return name


def atr_looks_emulated(atr: bytes) -> bool:
    """Our emulated card's ATRs. A real contact card may share one, so this alone never
    makes a card safe to hurt: the user's --allow-destructive is needed too."""
    return atr in ATR_PROFILES.values()


# --- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    """One thing under test: how to reach it and what it is expected to be."""

    spec: str
    kind: str
    wire: str  # the transport spec (inproc, vpcd, pcsc:R, listen:H:P) or the platform's URL
    defect: str | None
    device: DeviceProfile
    suites: tuple[str, ...] = ("card",)
    emulated: bool = False  # only emulated cards may be hurt (PIN lockout, PIN change)
    reader_defect: str | None = None  # a defective reader between pcscd's vpcd and the card
    _issuer: tuple[JlisCA, KeyPool] | None = field(default=None, repr=False)
    _rng: random.Random = field(default_factory=lambda: random.Random(7), repr=False)

    @property
    def suite(self) -> str:
        return self.suites[0]

    @property
    def drives_emulated_card(self) -> bool:
        """The harness holds the card object (fault injection, reinsertion, fresh per test)."""
        return self.kind in ("card", "realistic")

    def jlis_root(self) -> x509.Certificate | None:
        """The emulated J-LIS user-authentication root (it certifies the card-data key), once
        this target has issued a card; None otherwise."""
        if self._issuer is None:
            return None
        return x509.load_der_x509_certificate(self._issuer[0].auth_ca_certificate)

    def _new_state(self, **issue: Any) -> CardState:
        if self._issuer is None:
            folder = Path(tempfile.mkdtemp(prefix="mynahil-conformance-"))
            self._issuer = (
                JlisCA.create(folder / "ca"),
                KeyPool.generate(2, seed=7, cache_dir=folder / "keys"),
            )
        ca, keys = self._issuer
        return issue_card(
            ca, random_holder(self._rng), pin=EMULATED_PIN, password=EMULATED_PASSWORD,
            issued_on=date.today(), keys=keys, atr_profile=self.device.interface, **issue,
        )  # fmt: skip

    def emulated_card(
        self, *, faults: str | None = None, interface: str | None = None, **issue: Any
    ) -> EmulatedCard | FaultyCard:
        """A fresh card for one test: no test sees another's PIN counters. ``faults`` names a
        fault profile ("" for none, None for the device profile's); ``issue`` goes to
        :func:`issue_card` (e.g. ``with_certificates=False``)."""
        state = self._new_state(**issue)
        if interface is not None and interface != state.atr_profile:
            state = replace(state, atr_profile=interface)
        card: EmulatedCard = (
            DefectiveCard(state, self.defect) if self.defect else EmulatedCard(state)
        )
        profile = faults if faults is not None else self.device.faults
        if profile:
            return FaultyCard(card, load_fault_profile(_fault_profile_path(profile, "faults")))
        return card

    def open(
        self, card: EmulatedCard | FaultyCard | None, *, slot: CardSlot | None = None
    ) -> Transport:
        """The transport to the card, or to the card in ``slot`` (not yet connected)."""
        if self.drives_emulated_card:
            held = slot if slot is not None else card
            assert held is not None
            if self.wire == "inproc":
                # Not emulated_reader: like every other wire, unconnected for the caller to wrap
                # (record, guard) and connect.
                return InProcessTransport(held)
            if self.reader_defect:
                relay = DefectiveReader(held, self.reader_defect, budget_ms=self.device.budget_ms)
                return open_transport(self.wire, relay)
            return open_transport(self.wire, held)
        return open_transport(self.wire)


class CardSlot:
    """A card holder that stays attached to a wire while the card in it changes: pcscd's vpcd
    reader keeps one attachment for the session and each test gets a fresh card in it (a new
    attachment per test costs pcscd a removal and an insertion, most of a second)."""

    def __init__(self, card: EmulatedCard | FaultyCard) -> None:
        self.card = card

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def transmit(self, raw: bytes) -> bytes:
        return self.card.transmit(raw)

    def reset(self) -> bytes:
        return self.card.reset()


TargetBuilder = Callable[[str, str, "DeviceProfile | None"], Target]


@dataclass(frozen=True, slots=True)
class TargetKind:
    """A kind of target: the suites it selects, and how a spec of that kind becomes a target."""

    name: str
    suites: tuple[str, ...]
    emulated: bool
    usage: str
    build: TargetBuilder


TARGET_KINDS: dict[str, TargetKind] = {}


def register_target_kind(kind: TargetKind) -> None:
    """Add (or replace) a kind of target; the platform and operator suites register theirs."""
    TARGET_KINDS[kind.name] = kind


def _emulated_card_target(kind: str, emulated: bool) -> TargetBuilder:
    def build(spec: str, rest: str, device: DeviceProfile | None) -> Target:
        profile = device or bundled_profile("emulated-contact")
        if rest in ("inproc", "vpcd"):
            return Target(spec, kind, rest, None, profile, ("card",), emulated)
        if rest.startswith("defect:"):
            name = rest.removeprefix("defect:")
            if name not in DEFECTS:
                raise TargetError(f"no defect {name!r}; known: {', '.join(sorted(DEFECTS))}")
            return Target(spec, kind, "inproc", name, profile, ("card",), emulated)
        if rest.startswith("reader-defect:"):
            name = rest.removeprefix("reader-defect:")
            if name not in READER_DEFECTS:
                known = ", ".join(sorted(READER_DEFECTS))
                raise TargetError(f"no reader defect {name!r}; known: {known}")
            return Target(spec, kind, "vpcd", None, profile, ("card",), emulated, name)
        raise TargetError(
            f"{kind} targets: {kind}:inproc, {kind}:vpcd, {kind}:defect:NAME or "
            f"{kind}:reader-defect:NAME, not {spec!r}"
        )

    return build


def _pcsc_target(spec: str, rest: str, device: DeviceProfile | None) -> Target:
    return Target(spec, "pcsc", f"pcsc:{rest}" if rest else "pcsc",
                  None, device or bundled_profile("generic-reader"), ("card",), False)  # fmt: skip


def _phone_target(spec: str, rest: str, device: DeviceProfile | None) -> Target:
    wire = f"listen:{rest}" if rest else "listen:0.0.0.0:35963"
    return Target(spec, "phone", wire, None, device or bundled_profile("phone"), ("card",), False)


def _platform_target(spec: str, rest: str, device: DeviceProfile | None) -> Target:
    from .platform_defects import PLATFORM_DEFECTS

    if rest.startswith("defect:"):
        defect = rest.removeprefix("defect:")
        if defect not in PLATFORM_DEFECTS:
            raise TargetError(f"platform defects: {', '.join(PLATFORM_DEFECTS)}; not {defect!r}")
        profile = DeviceProfile(f"defective platform {defect}: {PLATFORM_DEFECTS[defect][0]}")
        return Target(spec, "platform", "sample", defect, device or profile, ("platform",))
    if not rest.startswith(("http://", "https://")) and rest != "sample":
        raise TargetError("platform targets: platform:sample, platform:defect:NAME or platform:URL")
    profile = DeviceProfile(f"MyKey platform at {rest}", budget_ms=2000)
    return Target(spec, "platform", rest, None, device or profile, ("platform",), False)


def _operator_target(spec: str, rest: str, device: DeviceProfile | None) -> Target:
    if rest.startswith(("http://", "https://")):  # a vendor's service: its operator profile
        profile = DeviceProfile(f"payment service at {rest}", budget_ms=1000)
        return Target(spec, "operator", rest, None, device or profile, ("operator",), False)
    defect = rest.removeprefix("defect:") if rest.startswith("defect:") else None
    if rest != "sample" and defect not in OPERATOR_DEFECTS:
        raise TargetError(
            f"operator targets: operator:sample, operator:defect:NAME "
            f"({', '.join(OPERATOR_DEFECTS)}) or operator:URL, not {spec!r}"
        )
    profile = DeviceProfile("sample payment service (reference operator)", budget_ms=1000)
    return Target(spec, "operator", "sample", defect, device or profile, ("operator",), False)


for _kind in (
    TargetKind("card", ("card",), True,
               "card:inproc | card:vpcd | card:defect:NAME | card:reader-defect:NAME",
               _emulated_card_target("card", True)),
    TargetKind("realistic", ("card",), False, "realistic:inproc | realistic:defect:NAME",
               _emulated_card_target("realistic", False)),
    TargetKind("pcsc", ("card",), False, 'pcsc[:"READER"]', _pcsc_target),
    TargetKind("phone", ("card",), False, "phone[:HOST:PORT]", _phone_target),
    TargetKind("platform", ("platform",), False,
               "platform:sample | platform:defect:NAME | platform:URL", _platform_target),
    TargetKind("operator", ("operator",), False,
               "operator:sample | operator:defect:NAME | operator:URL", _operator_target),
):  # fmt: skip
    register_target_kind(_kind)


def parse_target(spec: str, device: DeviceProfile | None = None) -> Target:
    """The target a spec names, with ``device`` (or the kind's bundled profile)."""
    kind_name, _, rest = spec.strip().partition(":")
    kind = TARGET_KINDS.get(kind_name)
    if kind is None:
        usage = "; ".join(k.usage for k in TARGET_KINDS.values())
        raise TargetError(f"unknown target {spec!r}: use {usage}")
    target = kind.build(spec, rest.strip().strip('"'), device)
    target.suites, target.emulated = kind.suites, kind.emulated
    return target
