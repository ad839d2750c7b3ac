"""The conformance suite's pytest plugin: inert unless ``--conformance-target`` is given.

It picks the target and device profile, hands each test a card (a fresh emulated one, or the
device under test) behind a transport that records every APDU, keeps destructive tests off
real cards, ties each test to the requirement IDs it checks, and at the end writes the
verdict per requirement (``results.json``), the certification report (``index.html``) and
the traces.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mynahil.card import MyNumberCard

from .catalogue import Requirement, load_catalogue
from .recording import RecordingTransport
from .targets import EMULATED_PIN, Target, TargetError, load_device_profile, parse_target

__all__ = ["CardUnderTest", "Conformance"]

OPTION = "--conformance-target"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mynahil-conformance", "MyNa Point conformance suite")
    group.addoption(OPTION, default=None, help="card:inproc, card:vpcd, card:defect:NAME, "
                    "pcsc[:READER], phone[:HOST:PORT]")  # fmt: skip
    group.addoption("--conformance-report", default=None, help="folder for the report")
    group.addoption("--device-profile", default=None, help="device profile TOML")
    group.addoption(
        "--allow-destructive",
        action="store_true",
        help="run PIN-lockout tests on a card that is not emulated (it will lock)",
    )
    group.addoption("--conformance-pin", default=None, help="the real card's PIN")
    group.addoption("--platform-ca", default=None, help="a platform target's J-LIS CA folder")


@dataclass
class CardUnderTest:
    """What a test gets: the Card API over a recording transport, and what it may do."""

    api: MyNumberCard
    transport: RecordingTransport
    target: Target
    pin: str
    emulated_card: Any | None  # the emulated card object (fault injection, reinsertion)


@dataclass
class Conformance:
    target: Target
    report_dir: Path
    catalogue: dict[str, Requirement]
    allow_destructive: bool
    pin: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # per test nodeid
    traces: dict[str, Path] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    atr: str = ""

    @property
    def selected(self) -> dict[str, Requirement]:
        return {k: r for k, r in self.catalogue.items() if r.suite == self.target.suite}


_KEY = pytest.StashKey[Conformance]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the catalogue requirements it checks")
    config.addinivalue_line("markers", "destructive: may lock or change a real card's PIN")
    config.addinivalue_line("markers", "faults(profile): the emulated card behind a fault profile")
    spec = config.getoption(OPTION)
    if not spec:
        return
    try:
        profile = config.getoption("--device-profile")
        device = load_device_profile(Path(profile)) if profile else None
        target = parse_target(spec, device)
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None
    report = Path(config.getoption("--conformance-report") or "reports/conformance")
    report.mkdir(parents=True, exist_ok=True)
    (report / "traces").mkdir(exist_ok=True)
    pin = config.getoption("--conformance-pin") or (EMULATED_PIN if target.emulated else "")
    config.stash[_KEY] = Conformance(
        target, report, load_catalogue(), bool(config.getoption("--allow-destructive")), pin
    )


def _state(config: pytest.Config) -> Conformance | None:
    return config.stash.get(_KEY, None)


def _requirements(item: pytest.Item) -> list[str]:
    return [str(i) for m in item.iter_markers("requirement") for i in m.args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    if state is None:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        ids = [i for i in _requirements(item) if i in state.catalogue]
        suites = {state.catalogue[i].suite for i in ids}
        (kept if not suites or state.target.suite in suites else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    for item in items:
        ids = _requirements(item)
        if not ids:
            raise pytest.UsageError(f"{item.nodeid}: names no requirement")
        unknown = [i for i in ids if i not in state.catalogue]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown requirement {', '.join(unknown)}")
        if item.get_closest_marker("destructive") and not state.target.emulated:
            if not state.allow_destructive:
                item.add_marker(pytest.mark.skip(
                    reason="destructive (locks or changes the PIN): only on emulated cards "
                    "unless --allow-destructive"))  # fmt: skip
            elif not state.pin:
                raise pytest.UsageError(
                    "--allow-destructive on a real card needs --conformance-pin"
                )
    if state.target.emulated is False and state.allow_destructive:
        print(
            "\n*** DESTRUCTIVE TESTS WILL RUN ON A REAL CARD: its PIN will lock and only a "
            "municipal window can unlock it. ***\n"
        )


@pytest.fixture
def card_under_test(request: pytest.FixtureRequest) -> Iterator[CardUnderTest]:
    state = _state(request.config)
    if state is None:
        pytest.skip("not a conformance run (no --conformance-target)")
    target = state.target
    faults = request.node.get_closest_marker("faults")
    emulated = (
        target.emulated_card(faults=str(faults.args[0]) if faults else None)
        if target.emulated
        else None
    )
    name = request.node.nodeid.split("::")[-1]
    path = state.report_dir / "traces" / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        transport = RecordingTransport(target.open(emulated), out, name)
        state.traces[request.node.nodeid] = path
        try:
            state.atr = transport.connect().hex().upper()
        except Exception as exc:
            pytest.fail(f"cannot reach the card through {target.spec}: {exc}")
        try:
            yield CardUnderTest(MyNumberCard(transport), transport, target, state.pin, emulated)
        finally:
            transport.disconnect()


@pytest.fixture(scope="session")
def operator_harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The reference platform, the operator's service and a holder who applied there."""
    state = _state(request.config)
    if state is None or state.target.kind != "operator":
        pytest.skip("not an operator conformance run")
    from .operator_harness import operator_harness as harness

    with harness(state.target.defect) as running:
        yield running


@pytest.fixture(scope="session")
def platform_harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The platform under test (or the reference one) and a way to issue trusted cards."""
    state = _state(request.config)
    if state is None or state.target.kind != "platform":
        pytest.skip("not a platform conformance run")
    from .platform_harness import platform_harness as harness

    ca = request.config.getoption("--platform-ca")
    url = None if state.target.wire == "sample" else state.target.wire
    with harness(url, Path(ca) if ca else None) as running:
        yield running


def _allure_labels(item: pytest.Item, state: Conformance) -> None:
    try:
        import allure
    except ImportError:
        return
    for requirement in _requirements(item):
        allure.dynamic.label("requirement", requirement)  # type: ignore[no-untyped-call]
    allure.dynamic.label("suite", state.target.suite)  # type: ignore[no-untyped-call]
    allure.dynamic.label("device", state.target.device.name)  # type: ignore[no-untyped-call]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    state = _state(item.config)
    if state is not None:
        _allure_labels(item, state)
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _CURRENT.get("state")
    if state is None:
        return
    entry = state.results.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
    entry["seconds"] = round(entry.get("seconds", 0.0) + report.duration, 6)
    if report.failed:
        entry["outcome"] = "failed"
        entry["message"] = str(report.longrepr)[-1500:] if report.longrepr else ""
    elif report.skipped and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        entry["message"] = str(reason)


_CURRENT: dict[str, Conformance] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        _CURRENT["state"] = state


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        for item in session.items:
            state.results[item.nodeid] = {
                "outcome": "passed", "seconds": 0.0, "message": "",
                "requirements": _requirements(item),
            }  # fmt: skip


def verdicts(state: Conformance) -> dict[str, dict[str, Any]]:
    """Per selected requirement: passed / failed / skipped / untested, with its tests."""
    out: dict[str, dict[str, Any]] = {}
    for rid, requirement in sorted(state.selected.items()):
        tests = {n: r for n, r in state.results.items() if rid in r.get("requirements", [])}
        outcomes = {r["outcome"] for r in tests.values()}
        if not tests:
            verdict = "untested"
        elif "failed" in outcomes:
            verdict = "failed"
        elif outcomes == {"skipped"}:
            verdict = "skipped"
        else:
            verdict = "passed"
        out[rid] = {
            "verdict": verdict,
            "title": requirement.title,
            "source": requirement.source,
            "tests": sorted(tests),
        }
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    _CURRENT.pop("state", None)
    requirements = verdicts(state)
    passed = all(v["verdict"] in ("passed", "skipped") for v in requirements.values()) and bool(
        requirements
    )
    results = {
        "target": state.target.spec,
        "device": state.target.device.name,
        "emulated": state.target.emulated,
        "atr": state.atr,
        "expected_atr": state.target.device.expected_atr,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(state.started)),
        "seconds": round(time.time() - state.started, 3),
        "passed": passed,
        "requirements": requirements,
        "tests": state.results,
        "traces": {
            n: {"file": str(p.relative_to(state.report_dir)), "sha256": _digest(p)}
            for n, p in state.traces.items()
        },
    }
    results_path = state.report_dir / "results.json"
    results_path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    from .report import write_html

    write_html(state.report_dir / "index.html", results, _digest(results_path))
    if not passed and session.exitstatus == 0:
        session.exitstatus = 1
