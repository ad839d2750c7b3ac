"""The main job on embedded defaults: cards through every wire this machine has.

Issues cards from a fresh emulated J-LIS CA, runs the MyKey read-certificate + PIN + sign
flow over each transport, checks every signature against its certificate and the
certificate against the CA, walks the PIN through a wrong entry, a lockout and the window's
unblock, lets OpenSC use the card through pcscd where it is installed, and writes a report.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.card_emulator import (
    CardFile,
    CardState,
    EmulatedCard,
    FaultyCard,
    PinSlot,
    ViccAttachment,
    emulated_reader,
    load_fault_profile,
    open_transport,
    save_card,
)
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import JlisCA, issue_card, random_holder
from mynahil.stats import percentile

from ..card import MyNumberCard, NoCertificate, Pin, PinBlocked, WrongPin
from ..opensc import find_opensc
from ..paths import scenarios_dir
from ..pcscd import PcscdUnavailable, pcscd_running
from ..transports import (
    Transport,
    vpcd_reader_name,
    wait_for_card,
    wait_for_removal,
)
from ..vpcd_protocol import VPCD_DEFAULT_PORT
from .platform_stories import platform_stories
from .points_stories import points_stories

__all__ = ["DemoReport", "FlowRun", "run_card_flow", "run_demo"]

PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD
Progress = Callable[[str], None]


@dataclass
class FlowRun:
    """One read-certificate + verify-PIN + sign flow, timed."""

    seconds: float
    apdus: int
    signature_valid: bool
    chain_valid: bool
    certificate_serial: int
    not_after: str


@dataclass
class TransportResult:
    transport: str
    card: str
    atr: str
    runs: int
    median_ms: float
    p95_ms: float
    apdus_per_flow: int
    all_signatures_valid: bool


@dataclass
class DemoReport:
    started: str
    machine: str
    transports: list[TransportResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    stories: list[dict[str, str]] = field(default_factory=list)
    opensc: dict[str, str] = field(default_factory=dict)
    report_dir: str = ""
    platform_db: str = ""
    settlement_csv: str = ""
    simulation: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        stories_ok = all(s["outcome"] == "as expected" for s in self.stories)
        return (
            bool(self.transports)
            and stories_ok
            and all(t.all_signatures_valid for t in self.transports)
            and self.opensc.get("outcome", "as expected") == "as expected"
        )


def verify_signature(
    certificate: bytes, ca_certificate: bytes, message: bytes, signature: bytes
) -> tuple[bool, bool]:
    """(signature valid over message, certificate issued by the CA)."""
    cert = x509.load_der_x509_certificate(certificate)
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        signature_ok = True
    except Exception:
        signature_ok = False
    try:
        cert.verify_directly_issued_by(x509.load_der_x509_certificate(ca_certificate))
        chain_ok = True
    except Exception:
        chain_ok = False
    return signature_ok, chain_ok


def run_card_flow(transport: Transport, ca_certificate: bytes, pin: str = PIN) -> FlowRun:
    """What a MyKey client does with the card, timed from first APDU to signature."""
    card = MyNumberCard(transport)
    challenge = secrets.token_bytes(32)
    start = time.perf_counter()
    certificate, signature = card.authenticate(pin, challenge)
    seconds = time.perf_counter() - start
    signature_ok, chain_ok = verify_signature(certificate, ca_certificate, challenge, signature)
    cert = x509.load_der_x509_certificate(certificate)
    return FlowRun(
        seconds,
        card.apdus_sent,
        signature_ok,
        chain_ok,
        cert.serial_number,
        cert.not_valid_after_utc.isoformat(),
    )


def _time_transport(
    spec: str, state: CardState, ca_cert: bytes, runs: int, label: str, faults: str | None = None
) -> TransportResult:
    emulated = EmulatedCard(state)
    card: EmulatedCard | FaultyCard = (
        FaultyCard(emulated, load_fault_profile(faults)) if faults else emulated
    )
    # Not emulated_reader: the same timed flow runs over each wire the plan names, inproc included.
    transport = open_transport(spec, card)
    try:
        atr = transport.connect()
        flows = []
        for _ in range(runs):
            transport.reset()
            flows.append(run_card_flow(transport, ca_cert))
    finally:
        transport.disconnect()
    times = [f.seconds * 1000 for f in flows]
    return TransportResult(
        transport=spec if spec != "vpcd" else "vpcd (pcscd + pyscard)",
        card=label,
        atr=atr.hex(" ").upper(),
        runs=runs,
        median_ms=round(statistics.median(times), 3),
        p95_ms=round(percentile(times, 95), 3),
        apdus_per_flow=flows[0].apdus,
        all_signatures_valid=all(f.signature_valid and f.chain_valid for f in flows),
    )


def _story(report: DemoReport, title: str, expected: str, observed: str) -> None:
    report.stories.append(
        {
            "story": title,
            "expected": expected,
            "observed": observed,
            "outcome": "as expected" if expected == observed else "UNEXPECTED",
        }
    )


def _pin_stories(report: DemoReport, ca: JlisCA, folder: Path, progress: Progress) -> None:
    """Wrong PIN, lockout, the window's unblock, a declined certificate, an expired one."""
    import random

    rng = random.Random(2020)
    path = folder / "cards" / "lockout.json"
    save_card(
        issue_card(ca, random_holder(rng), pin=PIN, password=PASSWORD, issued_on=date.today()), path
    )
    progress("PIN stories: wrong PIN, lockout, unblock at the window")
    with CardFile(path) as stored:
        card = emulated_reader(stored.state, stored)
        observed = []
        for _ in range(4):
            try:
                card.verify(Pin.AUTH, "9999")
            except WrongPin as exc:
                observed.append(f"wrong PIN, {exc.tries_left} left")
            except PinBlocked:
                observed.append("blocked")
        _story(
            report,
            "Three wrong PINs lock the card",
            "wrong PIN, 2 left; wrong PIN, 1 left; wrong PIN, 0 left; blocked",
            "; ".join(observed),
        )
        try:
            card.verify(Pin.AUTH, PIN)
            after = "accepted"
        except PinBlocked:
            after = "blocked"
        _story(report, "The right PIN does not open a blocked card", "blocked", after)
    # Counters are in the card file: reopening it is a power cycle, and it stays blocked.
    with CardFile(path) as stored:
        tries = stored.state.pins[PinSlot.AUTH].tries_left
        _story(report, "The lockout survives a power cycle", "0 tries left", f"{tries} tries left")
        stored.save(
            stored.state.with_pin(PinSlot.AUTH, stored.state.pins[PinSlot.AUTH].unblocked())
        )
    with CardFile(path) as stored:
        card = emulated_reader(stored.state, stored)
        run = run_card_flow(card.transport, ca.auth_ca_certificate)
        _story(
            report,
            "After the municipal window unblocks it, the card signs again",
            "signature valid",
            "signature valid" if run.signature_valid else "signature INVALID",
        )
    declined = issue_card(
        ca,
        random_holder(rng),
        pin=PIN,
        password=PASSWORD,
        issued_on=date.today(),
        with_certificates=False,
    )
    card = emulated_reader(declined)
    try:
        card.authenticate(PIN, b"challenge")
        outcome = "signed"
    except NoCertificate:
        outcome = "no certificate"
    _story(
        report,
        "A card whose holder declined the certificate cannot sign",
        "no certificate",
        outcome,
    )
    old = date(date.today().year - 6, 1, 15)
    expired = issue_card(ca, random_holder(rng), pin=PIN, password=PASSWORD, issued_on=old)
    card = emulated_reader(expired)
    run = run_card_flow(card.transport, ca.auth_ca_certificate)
    lapsed = datetime.fromisoformat(run.not_after) < datetime.now(UTC)
    _story(
        report,
        "A card issued six years ago carries an expired certificate (the platform must refuse it)",
        "expired",
        "expired" if lapsed else f"valid until {run.not_after}",
    )


@contextmanager
def _pcsc_stack(report: DemoReport, progress: Progress) -> Iterator[bool]:
    try:
        with pcscd_running():
            yield True
    except PcscdUnavailable as exc:
        report.skipped["vpcd"] = str(exc)
        progress(f"skipping the pcscd path: {exc}")
        yield False


def _opensc(report: DemoReport, state: CardState, progress: Progress) -> None:
    """OpenSC's own JPKI driver lists the certificates and signs with the auth key."""
    opensc = find_opensc()
    if opensc is None:
        report.skipped["opensc"] = "OpenSC is not installed (apt-get install opensc)"
        return
    progress("OpenSC: listing certificates and signing through pcscd")
    assert state.auth is not None
    with (
        tempfile.TemporaryDirectory() as tmp,
        ViccAttachment(EmulatedCard(state), "127.0.0.1", VPCD_DEFAULT_PORT),
    ):
        data, sig = Path(tmp) / "data", Path(tmp) / "sig"
        data.write_bytes(b"signed by OpenSC through pcscd and vpcd")
        wait_for_card(vpcd_reader_name(), timeout=10)
        listing = opensc.list_certificates()
        signing = opensc.sign(PIN, data, sig)
        valid = False
        if signing.returncode == 0 and sig.exists():
            valid, _ = verify_signature(
                state.auth.certificate,
                state.auth.ca_certificate,
                data.read_bytes(),
                sig.read_bytes(),
            )
    wait_for_removal(vpcd_reader_name())
    labels = [
        line.split("[", 1)[1].rstrip("]")
        for line in listing.stdout.splitlines()
        if line.startswith("X.509 Certificate [")
    ]
    report.opensc = {
        "certificates_listed": ", ".join(labels) or listing.stderr.strip()[:200],
        "signature": "valid" if valid else f"failed: {signing.stderr.strip()[:200]}",
        "outcome": "as expected" if valid and len(labels) == 4 else "UNEXPECTED",
    }


def run_demo(out_root: Path, *, runs: int = 20, progress: Progress = lambda _m: None) -> DemoReport:
    """Run everything and write ``report.json`` and ``report.md`` into a new folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = Path(out_root) / f"demo-{stamp}"
    (folder / "cards").mkdir(parents=True, exist_ok=True)
    report = DemoReport(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.python_implementation()} {platform.python_version()} "
        f"on {platform.machine()}, "
        f"{os.cpu_count()} cores",
        report_dir=str(folder),
    )
    progress("issuing cards from a fresh emulated J-LIS CA")
    import random

    rng = random.Random(1)
    ca = JlisCA.create(folder / "jlis")
    contact = issue_card(ca, random_holder(rng), pin=PIN, password=PASSWORD, issued_on=date.today())
    contactless = issue_card(
        ca,
        random_holder(rng),
        pin=PIN,
        password=PASSWORD,
        issued_on=date.today(),
        atr_profile="contactless",
    )
    save_card(contact, folder / "cards" / "contact.json")
    save_card(contactless, folder / "cards" / "contactless.json")
    ca_cert = ca.auth_ca_certificate
    nfc = str(scenarios_dir() / "faults" / "nfc-phone.toml")
    plan: list[tuple[str, CardState, str, str | None]] = [
        ("inproc", contact, "contact", None),
        ("socket", contact, "contact", None),
        (
            "inproc",
            contactless,
            "contactless + nfc-phone faults",
            nfc if os.path.exists(nfc) else None,
        ),
    ]
    for spec, state, label, faults in plan:
        progress(f"flow x{runs} over {spec} ({label})")
        report.transports.append(_time_transport(spec, state, ca_cert, runs, label, faults))
    with ExitStack() as stack:
        if stack.enter_context(_pcsc_stack(report, progress)):
            progress(f"flow x{runs} over pcscd + vpcd + pyscard")
            report.transports.append(_time_transport("vpcd", contact, ca_cert, runs, "contact"))
            _opensc(report, contact, progress)
    _pin_stories(report, ca, folder, progress)
    report.platform_db = platform_stories(
        folder,
        lambda title, expected, observed: _story(report, title, expected, observed),
        progress,
    )
    report.settlement_csv = str(
        points_stories(
            folder,
            lambda title, expected, observed: _story(report, title, expected, observed),
            progress,
        )
    )
    report.simulation = _short_simulation(folder, progress)
    write_report(report, folder)
    return report


def _short_simulation(folder: Path, progress: Progress) -> dict[str, str]:
    """Launch week of round 1 in the SimPy model (seconds): its HTML report beside this one."""
    from mynahil.simulator import load_scenario, run
    from mynahil.simulator.engine import open_executor
    from mynahil.simulator.metrics import hourly_table, summarize
    from mynahil.simulator.report import write_outputs

    progress("simulation: round 1's launch week, nationwide (SimPy cohort model)")
    scenario = load_scenario(scenarios_dir() / "launch-week.toml")
    with open_executor("serial", 1) as pool:
        result = run(scenario, seed=1, executor=pool)
    summary = summarize(result)
    out = folder / "simulation"
    files = write_outputs(out, scenario, summary, hourly_table(result))
    cumulative = summary.get("cumulative_applications", {})
    last_day = max(cumulative) if cumulative else ""
    return {
        "report": str(files.get("report", out / "report.html")),
        "applications_by": last_day,
        "applications": f"{cumulative.get(last_day, 0):,.0f}" if last_day else "0",
    }


def write_report(report: DemoReport, folder: Path) -> None:
    (folder / "report.json").write_text(
        json.dumps({**asdict(report), "ok": report.ok}, indent=2, ensure_ascii=False),
        encoding="utf-8",
    )
    lines = [
        "# mynahil demo report",
        "",
        f"Started {report.started} on {report.machine}. "
        f"Verdict: **{'PASS' if report.ok else 'FAIL'}**.",
        "",
        "## The MyKey card flow over each wire",
        "",
        "Select the JPKI AP, read the user-authentication certificate, verify the PIN, sign a",
        "SHA-256 DigestInfo of a fresh challenge; every signature is checked against the",
        "certificate and the certificate against the CA.",
        "",
        "| transport | card | ATR | runs | median ms | p95 ms | APDUs | signatures |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in report.transports:
        lines.append(
            f"| {t.transport} | {t.card} | `{t.atr}` | {t.runs} | "
            f"{t.median_ms:.2f} | {t.p95_ms:.2f} | "
            f"{t.apdus_per_flow} | {'all valid' if t.all_signatures_valid else 'INVALID'} |"
        )
    if report.opensc:
        lines += ["", "## OpenSC (its JPKI driver, through pcscd)", ""]
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in report.opensc.items()]
    lines += [
        "",
        "## Stories: PINs, certificates, MyKey IDs and points",
        "",
        "| story | expected | observed | outcome |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s['story']} | {s['expected']} | {s['observed']} | {s['outcome']} |"
        for s in report.stories
    ]
    if report.platform_db:
        lines += [
            "",
            f"The platform's database: `{report.platform_db}` "
            f"(check it: `mynahil audit verify --db {report.platform_db}`).",
        ]
    if report.settlement_csv:
        lines += [
            "",
            f"The sample operator's settlement for the replayed month: `{report.settlement_csv}`.",
        ]
    if report.simulation:
        s = report.simulation
        lines += [
            "",
            "## Simulation (round 1's launch week)",
            "",
            f"{s['applications']} applications simulated by {s['applications_by']}; the "
            f"calibrated report with queues, waits, lockouts and platform load: `{s['report']}`.",
        ]
    if report.skipped:
        lines += ["", "## Skipped", ""] + [f"- {k}: {v}" for k, v in report.skipped.items()]
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
