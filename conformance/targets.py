"""What the suite runs against: a target spec, its device profile, and a card per test.

Targets: ``card:inproc`` and ``card:vpcd`` (the emulated card, in-process or through pcscd),
``card:defect:NAME`` (a deliberately defective emulated card), ``pcsc[:READER]`` (a real
reader with a real or test card), ``phone[:HOST:PORT]`` (a phone running vsmartcard's Remote
Smart Card Reader, connecting to the harness's vpcd listener).
"""

from __future__ import annotations

import random
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from card_emulator import CardState, EmulatedCard, FaultyCard, load_fault_profile
from mynahil.paths import scenarios_dir
from mynahil.transports import Transport, open_transport
from mynahil.transports.inproc import InProcessTransport
from reference_impl.jlis import JlisCA, KeyPool, issue_card, random_holder

from .defects import DEFECTS, DefectiveCard

__all__ = ["DeviceProfile", "Target", "TargetError", "load_device_profile", "parse_target"]

EMULATED_PIN, EMULATED_PASSWORD = "1234", "ABC123"


class TargetError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    name: str
    expected_atr: str  # hex, upper case; "" accepts any
    budget_ms: float
    contactless: bool
    faults: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, object], source: str) -> DeviceProfile:
        allowed = {"name", "expected_atr", "budget_ms", "contactless", "faults"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise TargetError(f"{source}: {unknown[0]}: unknown field")
        name, atr = data.get("name"), data.get("expected_atr", "")
        budget, contactless = data.get("budget_ms"), data.get("contactless", False)
        if not isinstance(name, str) or not name:
            raise TargetError(f"{source}: name: a non-empty string is needed")
        if not isinstance(atr, str) or any(c not in "0123456789abcdefABCDEF " for c in atr):
            raise TargetError(f"{source}: expected_atr: hex digits, got {atr!r}")
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
            raise TargetError(f"{source}: budget_ms: a positive number, got {budget!r}")
        if not isinstance(contactless, bool):
            raise TargetError(f"{source}: contactless: true or false")
        faults = data.get("faults", "")
        if not isinstance(faults, str):
            raise TargetError(f"{source}: faults: a fault profile name")
        return cls(name, atr.replace(" ", "").upper(), float(budget), contactless, faults)


def load_device_profile(path: Path) -> DeviceProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path.name}: not valid TOML: {exc}") from None
    return DeviceProfile.from_mapping(data, path.name)


def _bundled_profile(name: str) -> DeviceProfile:
    return load_device_profile(scenarios_dir() / "devices" / f"{name}.toml")


@dataclass
class Target:
    spec: str
    kind: str  # card | pcsc | phone
    wire: str  # inproc | vpcd | pcsc[:R] | listen[:H:P]
    defect: str | None
    device: DeviceProfile

    @property
    def emulated(self) -> bool:
        """Only emulated cards may be hurt (PIN lockout, PIN change)."""
        return self.kind == "card"

    @property
    def suite(self) -> str:
        return self.kind if self.kind in ("operator", "platform") else "card"

    def __post_init__(self) -> None:
        self._issuer: tuple[JlisCA, KeyPool] | None = None
        self._rng = random.Random(7)

    def _new_state(self) -> CardState:
        if self._issuer is None:
            folder = Path(tempfile.mkdtemp(prefix="mynahil-conformance-"))
            self._issuer = (
                JlisCA.create(folder / "ca"),
                KeyPool.generate(2, seed=7, cache_dir=folder / "keys"),
            )
        ca, keys = self._issuer
        profile = "contactless" if self.device.contactless else "contact"
        return issue_card(
            ca, random_holder(self._rng), pin=EMULATED_PIN, password=EMULATED_PASSWORD,
            issued_on=date.today(), keys=keys, atr_profile=profile,
        )  # fmt: skip

    def emulated_card(self, *, faults: str | None = None) -> EmulatedCard | FaultyCard:
        """A fresh card for one test (emulated targets): no test sees another's PIN counters."""
        state = self._new_state()
        card: EmulatedCard = (
            DefectiveCard(state, self.defect) if self.defect else EmulatedCard(state)
        )
        profile = faults if faults is not None else self.device.faults
        if profile:
            path = scenarios_dir() / "faults" / f"{profile}.toml"
            return FaultyCard(card, load_fault_profile(str(path) if path.exists() else profile))
        return card

    def open(self, card: EmulatedCard | FaultyCard | None) -> Transport:
        if self.kind == "card":
            if self.wire == "inproc":
                assert card is not None
                return InProcessTransport(card)
            return open_transport(self.wire, card)
        return open_transport(self.wire)


def parse_target(spec: str, device: DeviceProfile | None = None) -> Target:
    kind, _, rest = spec.partition(":")
    if kind == "card":
        if rest in {"inproc", "vpcd"}:
            return Target(spec, "card", rest, None, device or _bundled_profile("emulated-contact"))
        if rest.startswith("defect:"):
            name = rest.removeprefix("defect:")
            if name not in DEFECTS:
                raise TargetError(f"no defect {name!r}; known: {', '.join(sorted(DEFECTS))}")
            return Target(
                spec, "card", "inproc", name, device or _bundled_profile("emulated-contact")
            )
        raise TargetError(f"card targets: card:inproc, card:vpcd, card:defect:NAME (not {spec!r})")
    if kind == "platform":
        if not rest:
            raise TargetError("platform targets: platform:sample or platform:URL")
        profile = DeviceProfile(f"MyKey platform at {rest}", "", 2000, False)
        return Target(spec, "platform", rest, None, device or profile)
    if kind == "operator":
        from .operator_harness import OPERATOR_DEFECTS

        defect = rest.removeprefix("defect:") if rest.startswith("defect:") else None
        if rest != "sample" and defect not in OPERATOR_DEFECTS:
            raise TargetError(
                f"operator targets: operator:sample or operator:defect:NAME "
                f"({', '.join(OPERATOR_DEFECTS)}), not {spec!r}"
            )
        profile = DeviceProfile("sample payment service (reference operator)", "", 1000, False)
        return Target(spec, "operator", "http", defect, device or profile)
    if kind == "pcsc":
        return Target(spec, "pcsc", spec, None, device or _bundled_profile("generic-reader"))
    if kind == "phone":
        wire = f"listen:{rest}" if rest else "listen"
        return Target(spec, "phone", wire, None, device or _bundled_profile("emulated-nfc-phone"))
    raise TargetError(
        f"unknown target {spec!r}: use card:inproc, card:vpcd, card:defect:NAME, "
        "pcsc[:READER] or phone[:HOST:PORT]"
    )
