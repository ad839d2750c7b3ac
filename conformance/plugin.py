"""The conformance suite's pytest plugin: inert unless ``--conformance-target`` is given.

It picks the target and device profile, hands each test a card (a fresh emulated one, or the
device under test) behind a transport that records every APDU, keeps destructive tests off
real cards and wrong PINs away from them, ties each test to the requirement IDs it checks,
and at the end writes the verdict per requirement (``results.json``), the certification report
(``index.html``) and the traces. Without the option it only registers its markers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography import x509

from mynahil.apdu import CommandApdu
from mynahil.card import MyNumberCard
from mynahil.card_emulator import CardState, EmulatedCard, FaultyCard
from mynahil.jpki import AID
from mynahil.transports import Transport, TransportError

from .catalogue import CATALOGUE, SUITES, Requirement, load_catalogue
from .fresh_card import FreshCardError, FreshCardHook, parse_hook, spent_tries
from .operator_profile import OperatorProfile, OperatorProfileError, load_operator_profile
from .recording import RecordingTransport
from .safety import (
    GuardedTransport,
    PinCounterNotFull,
    PinGuardState,
    allowed_banner,
    destructive_verdict,
    refusal_banner,
)
from .spec import chapter, spec_html
from .targets import (
    EMULATED_PASSWORD,
    EMULATED_PIN,
    CardSlot,
    Target,
    TargetError,
    atr_looks_emulated,
    load_device_profile,
    parse_target,
)

__all__ = ["OK", "CardUnderTest", "Conformance", "results_of", "verdicts"]

OPTION = "--conformance-target"
OK = 0x9000
# Not resolved: from a checkout the suites are reached through mynahil/conformance, and
# pytest names their modules (mynahil.conformance.suites...) by the path it is given.
SUITES_DIR = Path(__file__).with_name("suites")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mynahil-conformance", "MyNa Point conformance suite")
    group.addoption(OPTION, default=None, metavar="TARGET",
                    help="run the conformance suite against TARGET: card:inproc, card:vpcd, "
                    "card:defect:NAME, pcsc[:READER], phone[:HOST:PORT], platform:…, "
                    "operator:…")  # fmt: skip
    group.addoption("--conformance-report", dest="conformance_report", default=None,
                    metavar="DIR", help="folder for results.json, index.html and traces "
                    "(default reports/conformance)")  # fmt: skip
    group.addoption("--conformance-trace-dir", dest="conformance_trace_dir", default=None,
                    metavar="DIR",
                    help="folder for the APDU traces (default REPORT/traces)")  # fmt: skip
    group.addoption("--conformance-device-profile", dest="conformance_device_profile",
                    default=None, metavar="TOML",
                    help="device profile (scenarios/devices/*.toml)")  # fmt: skip
    group.addoption("--conformance-allow-destructive", dest="conformance_allow_destructive",
                    action="store_true",
                    help="run PIN-lockout and PIN-change tests on a card that is not a card:* "
                    "target; refused unless its ATR is an emulated one")  # fmt: skip
    group.addoption("--conformance-fresh-card", dest="conformance_fresh_card", default=None,
                    metavar="COMMAND|prompt",
                    help="with --conformance-allow-destructive through a reader: before each "
                    "destructive test run COMMAND (it returns once a fresh test card is in the "
                    "reader), or 'prompt' the operator to insert one")  # fmt: skip
    group.addoption("--conformance-pin", dest="conformance_pin", default=None,
                    help="the real card's auth PIN (no other PIN is ever sent)")  # fmt: skip
    group.addoption("--conformance-card-info-pin", dest="conformance_card_info_pin",
                    default=None,
                    help="the real card's card-info AP PIN (checks EF 0002's DF21 header, "
                    "reading no personal data)")  # fmt: skip
    group.addoption("--conformance-sign-password", dest="conformance_sign_password",
                    default=None,
                    help="the real card's signing password (signing-key tests)")  # fmt: skip
    group.addoption("--conformance-platform-ca", dest="conformance_platform_ca", default=None,
                    help="a platform target's J-LIS CA folder")  # fmt: skip
    group.addoption("--conformance-ca-file", dest="conformance_ca_file", default=None,
                    metavar="PEM",
                    help="platform:https://…: the CA its TLS certificate must chain to "
                    "(default $MYNAHIL_CA_FILE, else the system's trust store)")  # fmt: skip
    group.addoption("--conformance-operator-profile", dest="conformance_operator_profile",
                    default=None, metavar="TOML",
                    help="operator:URL: the vendor's service (IDs, public key, where the "
                    "harness's platform listens)")  # fmt: skip


@dataclass
class CardUnderTest:
    """What a test gets: the Card API and the raw wire (both recorded), and what it may do."""

    api: MyNumberCard
    transport: Transport  # every APDU of the test goes through it (and into the trace)
    target: Target
    pin: str  # "" when the user gave none (PIN-needing tests skip)
    sign_password: str
    emulated_card: EmulatedCard | FaultyCard | None  # the card object, on emulated targets
    destructive_allowed: bool
    _trace: IO[str] | None = None
    _name: str = ""
    _secrets: frozenset[bytes] = frozenset()  # masked in traces (a real card's PINs)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    card_info_pin: str = ""  # the card-info AP's PIN ("" on a real card unless given)

    def measure(self, name: str, value: float, limit: float, unit: str) -> bool:
        """Record a measurement against its upper limit (OpenHTF-style: the report shows
        "38 ms of 1,000 ms"); whether it is within the limit. The test still asserts."""
        within = value <= limit
        self.measurements.append({"name": name, "value": round(value, 3), "limit": limit,
                                  "unit": unit, "passed": within})  # fmt: skip
        return within

    # --- raw APDUs, for checking status words exactly --------------------------------------

    def send(self, apdu: str | bytes) -> tuple[bytes, int]:
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        response = self.transport.transmit(raw)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def select_ap(self, aid: AID | bytes = AID.JPKI) -> int:
        value = aid.value if isinstance(aid, AID) else aid
        return self.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, value).to_bytes())[1]

    def select_ef(self, fid: int) -> int:
        return self.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")).to_bytes())[1]

    def read(self, offset: int, le: int) -> tuple[bytes, int]:
        """READ BINARY with a short Le (256 is sent as 00)."""
        return self.send(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le % 256]))

    def verify(self, fid: int, value: str | None, aid: AID = AID.JPKI) -> int:
        """Select ``aid`` and the PIN EF, then VERIFY (no data: the retry query)."""
        assert self.select_ap(aid) == OK
        assert self.select_ef(fid) == OK
        data = value.encode("ascii") if value is not None else b""
        return self.send(CommandApdu(0x00, 0x20, 0x00, 0x80, data).to_bytes())[1]

    def require_application(self, name: str) -> None:
        """Skip unless the device profile lists the AP ``name`` (jpki, card-info, card-face)."""
        if name not in self.target.device.applications:
            pytest.skip(f"the device profile does not require the {name} AP")

    def emulated_state(self) -> CardState | None:
        """What the emulated card holds (its My Number, security code …); None on a real one."""
        card = self.emulated_card
        if card is None or not self.target.emulated:
            return None
        inner = card.card if isinstance(card, FaultyCard) else card
        return inner.state if isinstance(inner, EmulatedCard) else None

    def jlis_root(self) -> x509.Certificate | None:
        """The J-LIS root the emulated cards' data chains to; None when the suite has none."""
        return self.target.jlis_root()

    def wrong_pin(self) -> str:
        """A PIN certainly not the card's (only ever sent in destructive tests)."""
        return "0000" if self.pin != "0000" else "9999"

    def power_cycle(self) -> bytes:
        """Reset the card (the client forgets its selection too)."""
        self.api.forget_selection()
        return self.transport.reset()

    # --- more emulated cards, for tests that need another kind of card -----------------------

    def another_emulated_card(
        self, *, faults: str | None = "", interface: str | None = None, **issue: Any
    ) -> tuple[EmulatedCard | FaultyCard, Transport]:
        """A fresh emulated card on this test's trace (emulated targets only), connected in
        process. ``faults=""`` means none; ``issue`` goes to :func:`issue_card`."""
        if not self.target.drives_emulated_card or self._trace is None:
            pytest.skip("needs the harness to hold the emulated card")
        from mynahil.transports.inproc import InProcessTransport

        card = self.target.emulated_card(faults=faults, interface=interface, **issue)
        # Not emulated_reader: the trace records from the connect (the ATR) on, so the recorder
        # wraps the bare wire before it connects, and the test gets the wire, not the Card API.
        wire = RecordingTransport(
            InProcessTransport(card), self._trace, self._name, secrets=self._secrets
        )
        wire.connect()
        return card, wire


@dataclass
class Conformance:
    """One conformance session's state: the target, the options, what each test did."""

    target: Target
    report_dir: Path
    trace_dir: Path
    catalogue: dict[str, Requirement]
    allow_destructive: bool
    pin: str
    sign_password: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # per test nodeid
    traces: dict[str, Path] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    atr: str = ""
    reader: str = ""
    destructive: str = "run"  # run | skip | refuse
    refused: str = ""
    device_transport: Transport | None = None  # the session's wire (real device, or pcscd)
    slot: CardSlot | None = None  # the emulated card behind pcscd, swapped per test
    guard: PinGuardState = field(default_factory=lambda: PinGuardState(frozenset()))
    operator_profile: OperatorProfile | None = None  # operator:URL: the vendor's service
    unreachable: str = ""  # why the session's attachment to pcscd failed
    # requirements whose tests -k/-m (or another plugin) deselected: the verdict covers only
    # what was selected
    deselected: set[str] = field(default_factory=set)
    filtering: bool = False  # the plugin itself is deselecting other suites' tests
    card_info_pin: str = ""
    fresh_card: FreshCardHook | None = None  # how a reader gets a fresh card per destructive test
    fresh_cards: int = 0  # how many the hook inserted
    not_fresh: dict[str, str] = field(default_factory=dict)  # destructive tests skipped: why

    @property
    def selected(self) -> dict[str, Requirement]:
        return {k: r for k, r in self.catalogue.items() if r.suite in self.target.suites}

    def open_device(self) -> Transport:
        """The real device's transport, connected once for the whole session (a phone
        connects to the listener once; a reader keeps its card)."""
        if self.device_transport is None:
            transport = self.target.open(None)
            self.atr = transport.connect().hex().upper()
            self.reader = transport.name
            self.device_transport = transport
        return self.device_transport

    def probe_atr(self) -> bytes:
        if self.target.drives_emulated_card:
            return self.target.emulated_card().atr
        return self.open_device().atr


_KEY = pytest.StashKey[Conformance]()


@pytest.hookimpl(tryfirst=True)  # before the allure plugin reads its directory
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the catalogue requirements it checks")
    config.addinivalue_line(
        "markers", "destructive(locks=False): may lock or change a real card's PIN"
    )
    config.addinivalue_line("markers", "faults(profile): the emulated card behind a fault profile")
    spec = config.getoption(OPTION)
    if not spec:
        return  # inert: an ordinary pytest run of the project
    try:
        profile = config.getoption("conformance_device_profile")
        device = load_device_profile(Path(profile)) if profile else None
        target = parse_target(spec, device)
        operator_profile = _operator_profile(config, target)
    except (TargetError, OperatorProfileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    report = Path(config.getoption("conformance_report") or "reports/conformance")
    trace_dir = Path(config.getoption("conformance_trace_dir") or report / "traces")
    report.mkdir(parents=True, exist_ok=True)
    trace_dir.mkdir(parents=True, exist_ok=True)
    if getattr(config.option, "allure_report_dir", "unset") is None:
        config.option.allure_report_dir = str(report / "allure-results")
    pin = config.getoption("conformance_pin") or (EMULATED_PIN if target.emulated else "")
    password = config.getoption("conformance_sign_password") or (
        EMULATED_PASSWORD if target.emulated else ""
    )
    allow = bool(config.getoption("conformance_allow_destructive"))
    state = Conformance(target, report, trace_dir, load_catalogue(), allow, pin, password)
    info_pin = config.getoption("conformance_card_info_pin") or (
        EMULATED_PIN if target.emulated else ""
    )
    state.card_info_pin = info_pin
    state.guard = PinGuardState(
        frozenset(s.encode("ascii") for s in (pin, password, info_pin) if s)
    )
    state.operator_profile = operator_profile
    state.fresh_card = parse_hook(config.getoption("conformance_fresh_card"))
    config.stash[_KEY] = state


def _operator_profile(config: pytest.Config, target: Target) -> OperatorProfile | None:
    """operator:URL's profile (it names the device in the report); None for other targets."""
    if target.kind != "operator" or target.wire == "sample":
        return None
    path = config.getoption("conformance_operator_profile")
    if not path:
        raise TargetError(
            f"{target.spec} needs --conformance-operator-profile FILE: the service's operator "
            "and payment service IDs and its public key (docs/operator-conformance.md)"
        )
    profile = load_operator_profile(Path(path), target.spec)
    target.device = replace(target.device, name=profile.name, description=profile.description)
    return profile


def _state(config: pytest.Config) -> Conformance | None:
    return config.stash.get(_KEY, None)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Do not even import the suites the target does not select (``suites/<suite>/``)."""
    state = _state(config)
    if state is None or collection_path.parent != SUITES_DIR or not collection_path.is_dir():
        return None
    if collection_path.name in SUITES:
        return collection_path.name not in state.target.suites or None
    return None


def _requirements(item: pytest.Item) -> list[str]:
    return [str(i) for m in item.iter_markers("requirement") for i in m.args]


@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item: pytest.Item) -> None:
    """Requirement IDs are keywords: ``-k JPKI-PIN-003`` selects that requirement's tests."""
    if _state(item.config) is not None:
        item.extra_keyword_matches.update(_requirements(item))


def pytest_deselected(items: list[pytest.Item]) -> None:
    state = _state(items[0].config) if items else None
    if state is not None and not state.filtering:
        state.deselected.update(r for item in items for r in _requirements(item))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    if state is None:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        ids = _requirements(item)
        if not ids:
            raise pytest.UsageError(
                f"{item.nodeid}: names no requirement (@pytest.mark.requirement)"
            )
        unknown = [i for i in ids if i not in state.catalogue]
        if unknown:
            raise pytest.UsageError(
                f"{item.nodeid}: unknown requirement {', '.join(unknown)} "
                "(not in conformance/requirements.toml)"
            )
        suites = {state.catalogue[i].suite for i in ids}
        (kept if suites & set(state.target.suites) else dropped).append(item)
    if dropped:
        state.filtering = True
        config.hook.pytest_deselected(items=dropped)
        state.filtering = False
        items[:] = kept
    destructive = [i for i in items if i.get_closest_marker("destructive")]
    if not destructive or state.target.emulated:
        return
    looks = False
    if state.allow_destructive:
        atr = state.probe_atr()
        state.atr = atr.hex().upper()
        looks = atr_looks_emulated(atr)
    state.destructive = destructive_verdict(
        emulated_target=state.target.emulated,
        allow_destructive=state.allow_destructive,
        atr_looks_emulated=looks,
    )
    if state.destructive == "refuse":
        state.refused = refusal_banner(state.atr, state.target.spec)
        pytest.exit(state.refused, returncode=pytest.ExitCode.USAGE_ERROR)
    if state.destructive == "skip":
        reason = (
            "destructive (locks or changes the PIN): runs on card:* targets only, or with "
            "--allow-destructive on a card with an emulated ATR"
        )
        for item in destructive:
            item.add_marker(pytest.mark.skip(reason=reason))
        return
    if not state.pin:
        raise pytest.UsageError(
            "--conformance-allow-destructive on a card that is not card:* needs --conformance-pin"
        )
    print(allowed_banner(state.atr, state.target.spec))
    if not state.target.drives_emulated_card:
        # One card in the reader: destructive tests after every other, the one that locks a
        # PIN for good last of all (sorted() keeps the collection order otherwise).
        items[:] = sorted(items, key=_destructive_rank)


def _destructive_rank(item: pytest.Item) -> int:
    """0 an ordinary test, 1 a destructive one, 2 one that locks a PIN for good
    (``@pytest.mark.destructive(locks=True)``)."""
    marker = item.get_closest_marker("destructive")
    if marker is None:
        return 0
    return 2 if marker.kwargs.get("locks") else 1


def _insert_fresh_card(state: Conformance, hook: FreshCardHook, test: str) -> Transport:
    """Ask the hook for a fresh card, then reconnect to it; it must look emulated too."""
    wire = state.open_device()
    wire.disconnect()
    try:
        hook.insert(test)
    except FreshCardError as exc:
        pytest.fail(f"no fresh card for {test}: {exc}", pytrace=False)
    state.atr = wire.connect().hex().upper()
    state.fresh_cards += 1
    if not atr_looks_emulated(bytes.fromhex(state.atr)):
        state.refused = refusal_banner(state.atr, state.target.spec)
        pytest.exit(state.refused, returncode=pytest.ExitCode.USAGE_ERROR)
    return wire


def _open_for_test(
    state: Conformance, item: pytest.Item
) -> tuple[Transport, EmulatedCard | FaultyCard | None]:
    target = state.target
    if target.drives_emulated_card:
        faults = item.get_closest_marker("faults")
        card = target.emulated_card(faults=str(faults.args[0]) if faults else None)
        if target.wire != "inproc":  # one attachment to pcscd for the session, a card per test
            if state.unreachable:  # the session's one attachment failed: say why, at once
                raise TransportError(state.unreachable)
            if state.slot is None or state.device_transport is None:
                state.slot = CardSlot(card)
                wire = target.open(None, slot=state.slot)
                try:
                    wire.connect()
                except Exception as exc:
                    state.unreachable = str(exc)
                    raise
                state.device_transport = wire
            state.slot.card = card
            wire = state.device_transport
            state.atr = wire.reset().hex().upper()
            state.reader = wire.name
            return wire, card
        wire = target.open(card)
        state.atr = wire.connect().hex().upper()
        state.reader = state.reader or wire.name
        return wire, card
    hook = state.fresh_card
    if hook is not None and item.get_closest_marker("destructive") and state.destructive == "run":
        wire = _insert_fresh_card(state, hook, item.nodeid.split("::")[-1])
    else:
        wire = state.open_device()
    wire.reset()  # every test starts with nothing selected and no PIN verified
    return wire, None


@pytest.fixture
def card_under_test(request: pytest.FixtureRequest) -> Iterator[CardUnderTest]:
    """The card under test for one test, every APDU recorded to the test's trace."""
    state = _state(request.config)
    if state is None:
        pytest.skip("not a conformance run (no --conformance-target)")
    if state.guard.rejected:
        pytest.skip(f"no PIN tests after the card rejected one: {state.guard.rejected}")
    item = request.node
    name = item.nodeid.split("::")[-1]
    path = state.trace_dir / f"{name}.jsonl"
    destructive = item.get_closest_marker("destructive") is not None
    with path.open("w", encoding="utf-8") as out:
        state.traces[item.nodeid] = path
        try:
            wire, card = _open_for_test(state, item)
        except Exception as exc:
            pytest.fail(f"cannot reach the card through {state.target.spec}: {exc}")
        secrets: frozenset[bytes] = frozenset() if state.target.emulated else state.guard.secrets
        recorded: Transport = RecordingTransport(wire, out, name, secrets=secrets)
        if not state.target.emulated and not destructive:
            # outside the recorder: what it refuses was never sent, what it asks is traced
            recorded = GuardedTransport(recorded, state.guard)
        under_test = CardUnderTest(
            MyNumberCard(recorded), recorded, state.target, state.pin, state.sign_password,
            card, state.target.emulated or state.destructive == "run", out, name, secrets,
        )  # fmt: skip
        state.results[item.nodeid]["measurements"] = under_test.measurements
        under_test.card_info_pin = state.card_info_pin
        if destructive and not state.target.drives_emulated_card:
            _require_fresh(state, recorded, name)
        try:
            yield under_test
        finally:
            if state.target.wire == "inproc":
                wire.disconnect()
    _allure_attach(path)


def _require_fresh(state: Conformance, recorded: Transport, name: str) -> None:
    """A destructive test through a reader starts only on a card with every PIN counter full:
    on a card an earlier test locked it could judge nothing (and would fail for that)."""
    spent = spent_tries(recorded)
    recorded.reset()
    if not spent:
        return
    if state.fresh_card is not None:
        pytest.fail(f"the fresh card is not fresh: {'; '.join(spent)}", pytrace=False)
    why = (
        f"the card in the reader is no longer fresh ({'; '.join(spent)}): an earlier "
        "destructive test spent its tries; give --fresh-card to run each on a fresh card"
    )
    state.not_fresh[name] = why
    pytest.skip(why)


def _allure_attach(path: Path) -> None:
    """The test's APDU trace as an allure attachment (when allure-pytest records the run)."""
    try:
        import allure  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return
    attach: Any = allure.attach  # allure ships no type hints
    if path.exists():
        attach.file(str(path), name="APDU trace", attachment_type="application/json",
                    extension="jsonl")  # fmt: skip


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is not None and state.device_transport is not None:
        state.device_transport.disconnect()
        close = getattr(state.device_transport, "close", None)
        if callable(close):
            close()  # a phone listener gives its port back


@pytest.fixture(scope="session")
def operator_harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The reference platform, the operator's service and a holder who applied there."""
    state = _state(request.config)
    if state is None or state.target.kind != "operator":
        pytest.skip("not an operator conformance run")
    from .operator_harness import HarnessError
    from .operator_harness import operator_harness as harness

    try:
        with harness(state.target.defect, state.operator_profile) as running:
            yield running
    except HarnessError as exc:
        pytest.fail(f"the operator harness could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def platform_harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The platform under test (or the reference one) and a way to issue trusted cards."""
    state = _state(request.config)
    if state is None or state.target.kind != "platform":
        pytest.skip("not a platform conformance run")
    from .operator_harness import HarnessError
    from .platform_harness import platform_harness as harness

    ca = request.config.getoption("conformance_platform_ca")
    ca_file = request.config.getoption("conformance_ca_file")
    url = None if state.target.wire == "sample" else state.target.wire
    try:
        with harness(
            url, Path(ca) if ca else None, state.target.defect, ca_file=ca_file
        ) as running:
            yield running
    except HarnessError as exc:
        pytest.fail(f"the platform harness could not start: {exc}", pytrace=False)


def _parameter_text(value: object) -> str:
    """A parameter as allure shows it: an enum by name (AID.CARD_INFO, JpkiFile.AUTH_PIN 0018),
    bytes in hex, an int in hex as the card's IDs are written; anything else as repr."""
    if isinstance(value, Enum):
        extra = f" {int(value):04X}" if isinstance(value, int) else ""
        return f"{type(value).__name__}.{value.name}{extra}"
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:02X}"
    return repr(value)


def _allure_labels(item: pytest.Item, state: Conformance) -> None:
    try:
        import allure  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return
    dynamic: Any = allure.dynamic  # allure ships no type hints
    for requirement in _requirements(item):
        dynamic.label("requirement", requirement)
        dynamic.tag(requirement)
    callspec = getattr(item, "callspec", None)
    for name, value in callspec.params.items() if callspec is not None else ():
        dynamic.parameter(name, _parameter_text(value))  # stable, readable, one per test
    dynamic.label("suite", state.target.suite)
    dynamic.label("device", state.target.device.name)
    dynamic.label("target", state.target.spec)
    if item.get_closest_marker("destructive"):
        dynamic.tag("destructive")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    state = _state(item.config)
    if state is not None:
        _allure_labels(item, state)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    state = _state(item.config)
    if state is not None and report.failed and call.excinfo is not None:
        entry = state.results.get(item.nodeid)
        if entry is not None and not entry.get("reason"):
            entry["reason"] = failure_reason(call.excinfo.value)
    if call.excinfo is not None and call.excinfo.errisinstance(PinCounterNotFull):
        # Not this test's failure: the PIN it needs has tries missing, so it was not entered;
        # the requirement on the counter itself (PIN-001, PIN-005, CINFO-001) fails instead.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value}")
    if state is not None and state.guard.rejected and not item.session.shouldstop:
        # The card said the user's PIN is wrong: stop before anything else could spend a try.
        item.session.shouldstop = f"stopped to protect the card: {state.guard.rejected}"


def failure_reason(exc: BaseException) -> str:
    """What a failed test says went wrong, in its own words: the assertion's message (without
    pytest's "assert …" explanation when there is a message), pytest.fail's text, or the
    exception's type and text. Never a traceback."""
    text = str(exc).strip()
    if isinstance(exc, AssertionError):
        lines = text.splitlines()
        if lines and not lines[0].startswith("assert "):
            text = lines[0]  # the test's own message; the explanation follows it
        return (text or "assertion failed")[:500]
    if type(exc).__name__ == "Failed":  # pytest.fail(...)
        return text[:500]
    return f"{type(exc).__name__}: {text}"[:500]


_CURRENT: dict[str, Conformance] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _CURRENT.get("state")
    if state is None or report.nodeid not in state.results:
        return
    entry = state.results[report.nodeid]
    entry["seconds"] = round(entry.get("seconds", 0.0) + report.duration, 6)
    if report.failed:
        entry["outcome"] = "failed"
        entry["message"] = str(report.longrepr)[-1500:] if report.longrepr else ""
    elif report.skipped and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        entry["message"] = str(reason).removeprefix("Skipped: ")
    elif report.when == "call" and entry["outcome"] == "not run":
        entry["outcome"] = "passed"


def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        _CURRENT["state"] = state


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        for item in session.items:
            state.results[item.nodeid] = {
                "outcome": "not run", "seconds": 0.0, "message": "",
                "requirements": _requirements(item),
                "destructive": item.get_closest_marker("destructive") is not None,
                "reason": "", "measurements": [],
            }  # fmt: skip
            for rid in _requirements(item):  # JUnit XML: <property name="requirement" …>
                item.user_properties.append(("requirement", rid))


def verdicts(state: Conformance) -> dict[str, dict[str, Any]]:
    """Per selected requirement: passed / failed / skipped / untested / planned, with its tests.

    A requirement passes when none of its tests failed and at least one passed; it is
    ``skipped`` when all its tests were skipped (not applicable to this device, or destructive).
    """
    out: dict[str, dict[str, Any]] = {}
    for rid, requirement in sorted(state.selected.items()):
        tests = {n: r for n, r in state.results.items() if rid in r.get("requirements", [])}
        outcomes = {r["outcome"] for r in tests.values()}
        if not tests and state.deselected:
            verdict = "not selected"  # a selection (-k, -m) covers only what it selected
        elif not tests:
            verdict = "planned" if requirement.planned else "untested"
        elif "failed" in outcomes:
            verdict = "failed"
        elif "passed" in outcomes:
            verdict = "passed"
        elif "not run" in outcomes:
            verdict = "untested"
        else:
            verdict = "skipped"
        out[rid] = {
            "verdict": verdict,
            # a run without destructive tests (CI mode, a real card) cannot judge this one
            "not_judged": any(
                r["outcome"] != "passed"
                and (state.destructive == "skip" or n.split("::")[-1] in state.not_fresh)
                for n, r in tests.items()
                if r.get("destructive")
            ),
            "title": requirement.title,
            "source": requirement.source,
            "chapter": chapter(requirement),
            "spec": f"spec.html#{rid}",
            "suite": requirement.suite,
            "tests": sorted(tests),
            "seconds": round(sum(r["seconds"] for r in tests.values()), 3),
            "reasons": sorted({r["message"] for r in tests.values() if r["outcome"] == "skipped"}),
            "failures": [
                {"test": n.split("::")[-1], "reason": r.get("reason") or r["message"]}
                for n, r in sorted(tests.items())
                if r["outcome"] == "failed"
            ],
            "measurements": [
                {"test": n.split("::")[-1], **m}
                for n, r in sorted(tests.items())
                for m in r.get("measurements", [])
            ],
        }
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _relative(path: Path, folder: Path) -> str:
    """``path`` as seen from the report folder (the report links it); absolute if elsewhere."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(path.resolve(), folder.resolve())


def verdict_label(passed: bool, is_self_test: bool, selection: dict[str, Any]) -> str:
    """The run's one-line verdict: CERTIFIED only for a whole run against a vendor's device."""
    if is_self_test:
        label = "SELF-TEST PASSED" if passed else "SELF-TEST FAILED"
    elif selection["partial"]:
        label = "PASSED" if passed else "NOT CERTIFIED"
    else:
        label = "CERTIFIED" if passed else "NOT CERTIFIED"
    if selection["partial"]:
        label += f" (selection only: {selection['selected']} of {selection['of']} requirements)"
    return label


def self_test(target: Target) -> bool:
    """A run against one of our own emulated targets or harness-served samples checks the
    suite, not a vendor's device: its report is a self-test, never a certificate."""
    return target.drives_emulated_card or target.wire == "sample"


def destructive_how(state: Conformance) -> str:
    """How the destructive tests were run, for the report (empty when they were not)."""
    if state.destructive != "run" or "card" not in state.target.suites:
        return ""
    if state.target.drives_emulated_card:
        return "each on a new emulated card"
    if state.fresh_card is not None:
        return f"after every other test, {state.fresh_card.describe()} ({state.fresh_cards} cards)"
    how = (
        "after every other test, on the one card in the reader, the PIN lockout last "
        "(each only while every PIN counter of the card is full)"
    )
    if state.not_fresh:
        how += (
            f"; {len(state.not_fresh)} skipped because an earlier one had spent the card's "
            f"tries: {', '.join(sorted(state.not_fresh))} (give --fresh-card)"
        )
    return how


def _endpoint(state: Conformance) -> dict[str, str]:
    """What identifies a service under test (the report shows it instead of card details)."""
    profile, target = state.operator_profile, state.target
    if profile is not None:
        return {
            "operator ID": profile.operator_id,
            "payment service ID": profile.service_id,
            "conformance hooks": profile.url,
            "verify URL": profile.verify_url,
            "harness platform, as the service reached it": profile.platform_url,
        }
    if target.kind in ("platform", "operator"):
        where = "served by the harness" if target.wire == "sample" else target.wire
        return {f"{target.kind}": where}
    return {}


def results_of(state: Conformance) -> dict[str, Any]:
    """``results.json``: the verdicts, the catalogue check, the device, timings and traces."""
    requirements = verdicts(state)
    untested = sorted(r for r, v in requirements.items() if v["verdict"] == "untested")
    planned = sorted(r for r, v in requirements.items() if v["verdict"] == "planned")
    failed = sorted(r for r, v in requirements.items() if v["verdict"] == "failed")
    not_judged = sorted(r for r, v in requirements.items() if v["not_judged"])
    catalogue = {
        "verdict": "failed" if untested else "passed",
        "untested": untested,
        "planned": planned,
        "selected": len(requirements),
    }
    passed = (
        not failed
        and not untested
        and not state.refused
        and any(v["verdict"] == "passed" for v in requirements.values())
    )
    device = state.target.device
    from mynahil import __version__

    chosen = [r for r, v in requirements.items() if v["verdict"] != "not selected"]
    selection = {
        "partial": bool(state.deselected),
        "selected": len(chosen),
        "of": len(requirements),
        "note": (
            f"the verdict covers only the {len(chosen)} of {len(requirements)} requirements "
            "selected (-k/-m): it certifies none of the others"
            if state.deselected
            else ""
        ),
    }
    return {
        "tool": {"name": "mynahil", "version": __version__},
        "catalogue_sha256": _digest(CATALOGUE),
        "self_test": self_test(state.target),
        "identity": dict(device.identity),
        "target": state.target.spec,
        "suites": list(state.target.suites),
        "device": device.name,
        "endpoint": _endpoint(state),
        "device_profile": {
            "interface": device.interface,
            "expected_atr": device.expected_atr,
            "atr_mask": device.atr_mask,
            "budget_ms": device.budget_ms,
        },
        "reader": state.reader,
        "emulated": state.target.emulated,
        "atr": state.atr,
        "expected_atr": device.expected_atr,
        "destructive": state.destructive,
        "destructive_how": destructive_how(state),
        "refused": state.refused,
        "not_judged": not_judged,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(state.started)),
        "seconds": round(time.time() - state.started, 3),
        "passed": passed,
        "catalogue": catalogue,
        "counts": {
            v: sum(1 for r in requirements.values() if r["verdict"] == v)
            for v in ("passed", "failed", "skipped", "untested", "planned", "not selected")
        },
        "selection": selection,
        "verdict_label": verdict_label(passed, self_test(state.target), selection),
        "requirements": requirements,
        "tests": state.results,
        "traces": {
            n: {"file": _relative(p, state.report_dir), "sha256": _digest(p)}
            for n, p in sorted(state.traces.items())
        },
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    _CURRENT.pop("state", None)
    results = results_of(state)
    results_path = state.report_dir / "results.json"
    results_path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    from .report import write_html

    write_html(state.report_dir / "index.html", results, _digest(results_path))
    spec = spec_html({r: state.catalogue[r] for r in results["requirements"]})
    (state.report_dir / "spec.html").write_text(spec, encoding="utf-8")
    _allure_environment(session.config, results)
    if not results["passed"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _allure_environment(config: pytest.Config, results: dict[str, Any]) -> None:
    """allure's Environment panel: tool, catalogue, target, device and its identity."""
    folder = getattr(config.option, "allure_report_dir", None)
    if not folder or not Path(folder).is_dir():
        return
    values = {
        "tool": f"mynahil {results['tool']['version']}",
        "catalogue.sha256": results["catalogue_sha256"],
        "target": results["target"],
        "device": results["device"],
        "self_test": str(results["self_test"]).lower(),
        "atr": results["atr"],
        "reader": results["reader"],
        **{f"device.{k}": v for k, v in results["identity"].items()},
    }
    lines = [f"{k}={' '.join(str(v).split())}" for k, v in values.items() if v]
    (Path(folder) / "environment.properties").write_text("\n".join(lines) + "\n", "utf-8")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state is None:
        return
    results = results_of(state)
    counts = ", ".join(f"{n} {v}" for v, n in results["counts"].items() if n)
    terminalreporter.write_sep("=", f"conformance {state.target.spec}: {counts}")
    for rid, v in results["requirements"].items():
        if v["verdict"] in ("failed", "untested"):
            terminalreporter.write_line(f"{v['verdict'].upper():9} {rid}  {v['title']}")
            for failure in v.get("failures", []):
                terminalreporter.write_line(f"{'':9} {failure['test']}: {failure['reason']}")
    if results["destructive_how"]:
        terminalreporter.write_line(f"destructive tests: {results['destructive_how']}")
    if results["not_judged"]:
        terminalreporter.write_line(
            f"without destructive tests this run cannot judge {len(results['not_judged'])} "
            f"requirement(s): {', '.join(results['not_judged'])}"
        )
    terminalreporter.write_line(f"{results['verdict_label']} -> {state.report_dir / 'index.html'}")
