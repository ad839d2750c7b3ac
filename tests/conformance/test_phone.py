"""A phone target: the harness listens as a vpcd and a "phone" (here the emulated contactless
card behind NFC latency, attached as a vicc client, as the Remote Smart Card Reader app would
be) connects to it. One card for the whole session, as with a real phone."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from mynahil.card_emulator import FaultyCard, ViccAttachment, load_fault_profile
from mynahil.conformance.cli import run_target
from mynahil.conformance.targets import DeviceProfile, parse_target
from tests.support import PASSWORD, PIN, free_port, mynahil

from .conftest import SCENARIOS


def test_a_phone_running_the_remote_reader_app(tmp_path: Path) -> None:
    port = free_port()
    contactless = DeviceProfile("phone card", interface="contactless")
    card = parse_target("card:inproc", contactless).emulated_card(faults="")
    nfc = load_fault_profile(str(SCENARIOS / "faults" / "nfc-phone.toml"))
    phone = ViccAttachment(FaultyCard(card, nfc), "127.0.0.1", port, connect_timeout=60)
    connecting = threading.Thread(target=phone.start, daemon=True)
    connecting.start()
    try:
        code, results = run_target(
            f"phone:127.0.0.1:{port}", tmp_path, pin=PIN, sign_password=PASSWORD
        )
    finally:
        phone.stop()
    requirements = results["requirements"]
    assert code == 0, {k: v for k, v in requirements.items() if v["verdict"] != "passed"}
    assert results["passed"] is True
    assert results["atr"].startswith("3B888001")
    assert results["reader"].startswith("vpcd-listen:")
    assert requirements["JPKI-SIG-001"]["verdict"] == "passed"
    assert requirements["SPEC-CARD-005"]["verdict"] == "passed"
    assert requirements["JPKI-PIN-003"]["verdict"] == "skipped"  # destructive: a real card


def test_a_phone_port_already_taken_is_refused_in_one_line(tmp_path: Path) -> None:
    """pcscd's vpcd holds 35963 and 35964: a phone target on a taken port is one line naming
    the way out, not a "cannot listen" failure under each of its tests."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = mynahil("conformance", "run", "--target", f"phone:127.0.0.1:{port}",
                       "--report", str(tmp_path / "report"))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "another port" in lines[0]
    assert not (tmp_path / "report" / "results.json").exists()
