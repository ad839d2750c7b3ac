"""The ``mynahil card`` commands as a user runs them: real card files, real CA folder."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from mynahil.card import MyNumberCard, Pin, PinBlocked, WrongPin
from mynahil.card_emulator import CardFile, EmulatedCard, PinSlot, emulated_reader, load_card
from mynahil.cli import app
from mynahil.transports import VpcdListenerTransport
from tests.support import PASSWORD, PIN

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYNAHIL_HOME", str(tmp_path / "home"))


def new_card(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "card.json"
    result = runner.invoke(app, ["card", "new", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def test_card_new_with_the_acceptance_options(tmp_path: Path) -> None:
    """`card new --out PATH --pin 1234 --password ABC123` makes a card that signs after 1234."""
    path = new_card(tmp_path, "--pin", PIN, "--password", PASSWORD, "--birth-date", "1990-05-01")
    state = load_card(path)
    assert state.holder.birth_date == date(1990, 5, 1)
    card = emulated_reader(state)
    card.verify(Pin.SIGN, PASSWORD)
    certificate, _signature = card.authenticate(PIN, b"c")
    assert state.auth is not None
    assert certificate == state.auth.certificate


def test_card_new_rejects_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    out = str(tmp_path / "c.json")
    cases = {
        ("--pin", "12345"): "exactly 4",
        ("--password", "abc"): "signing password",
        ("--birth-date", "1990-13-01"): "--birth-date",
        ("--my-number", "123456789012"): "My Number",
    }
    for args, message in cases.items():
        result = runner.invoke(app, ["card", "new", "--out", out, *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not Path(out).exists()


def test_card_new_does_not_overwrite_without_force(tmp_path: Path) -> None:
    path = new_card(tmp_path)
    result = runner.invoke(app, ["card", "new", "--out", str(path)])
    assert result.exit_code == 2
    assert "--force" in result.output


def test_card_new_variants(tmp_path: Path) -> None:
    """--no-certificate, --expired, --minor and --atr contactless make what they say."""
    declined = load_card(new_card(tmp_path / "a", "--no-certificate"))
    assert declined.auth is None
    assert declined.sign is None
    expired = load_card(new_card(tmp_path / "b", "--expired"))
    assert expired.auth is not None
    not_after = x509.load_der_x509_certificate(expired.auth.certificate).not_valid_after_utc
    assert not_after.date() < date.today()
    minor = load_card(new_card(tmp_path / "c", "--minor"))
    assert minor.auth is not None
    cert_end = x509.load_der_x509_certificate(minor.auth.certificate).not_valid_after_utc.date()
    assert minor.card_expires == cert_end  # a minor's card lasts as long as the certificate
    contactless = load_card(new_card(tmp_path / "d", "--atr", "contactless"))
    assert EmulatedCard(contactless).atr.startswith(bytes.fromhex("3B888001"))


def test_card_new_minor_asks_the_validity_rules(tmp_path: Path) -> None:
    """Issue #16: a real 17-year-old was refused because the command subtracted years."""
    args = ("--minor", "--birth-date", "2006-12-31", "--issued-on", "2024-06-01")
    seventeen = load_card(new_card(tmp_path / "a", *args))
    assert seventeen.card_expires == date(2028, 12, 31)  # a minor's card: 5th birthday
    assert seventeen.sign is not None  # 15 or older: a signing certificate
    adult = runner.invoke(
        app,
        ["card", "new", "--out", str(tmp_path / "b.json"), "--minor",
         "--birth-date", "2006-04-30", "--issued-on", "2024-06-01"],
    )  # fmt: skip
    assert adult.exit_code == 2, adult.output
    assert "--minor" in adult.output
    assert "not a minor on the issuance date 2024-06-01" in adult.output
    twelve = load_card(new_card(tmp_path / "c", "--minor", "--issued-on", "2024-06-01"))
    assert twelve.sign is None  # under 15: no signing certificate


def test_card_new_records_the_application_date_with_j_lis(tmp_path: Path) -> None:
    from mynahil.reference_impl.jlis import CertificateRegistry

    registry = CertificateRegistry(tmp_path / "home" / "jlis")
    given = load_card(
        new_card(tmp_path / "a", "--issued-on", "2021-05-20", "--applied-on", "2021-04-20")
    )
    assert given.auth is not None
    serial = x509.load_der_x509_certificate(given.auth.certificate).serial_number
    facts = registry.holder_facts(serial)
    assert facts is not None
    assert facts.card_applied_on == date(2021, 4, 20)
    default = load_card(new_card(tmp_path / "b", "--issued-on", "2021-05-20"))
    assert default.auth is not None
    serial = x509.load_der_x509_certificate(default.auth.certificate).serial_number
    facts = registry.holder_facts(serial)
    assert facts is not None
    assert facts.card_applied_on == date(2021, 4, 20)  # a month before issuance
    late = runner.invoke(
        app,
        ["card", "new", "--out", str(tmp_path / "c.json"), "--issued-on", "2021-05-20",
         "--applied-on", "2021-05-21"],
    )  # fmt: skip
    assert late.exit_code == 2, late.output
    assert "--applied-on 2021-05-21 is after the issuance date 2021-05-20" in late.output
    assert not (tmp_path / "c.json").exists()
    shown = runner.invoke(app, ["card", "info", "--card", str(tmp_path / "a" / "card.json")])
    assert shown.exit_code == 0, shown.output
    assert "card applied for on 2021-04-20" in shown.output
    bad = runner.invoke(
        app, ["card", "new", "--out", str(tmp_path / "d.json"), "--applied-on", "2021-02-30"]
    )
    assert bad.exit_code == 2
    assert "--applied-on" in bad.output


def test_registry_register_and_show(tmp_path: Path) -> None:
    """`mynahil registry register` records the holder J-LIS names; the platform's registries
    (the same folder) then hold the registration."""
    from mynahil.reference_impl.gateways import LocalRegistries
    from mynahil.reference_impl.jlis import CertificateRegistry
    from mynahil.reference_impl.registries import open_registries

    card = new_card(tmp_path / "a", "--issued-on", "2022-06-01")
    folder = tmp_path / "home" / "jlis"
    show = ["registry", "show", "--kind", "health-insurance", "--card", str(card)]
    assert runner.invoke(app, show).exit_code == 1
    result = runner.invoke(
        app,
        ["registry", "register", "--kind", "health-insurance", "--card", str(card),
         "--on", "2022-07-01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2022-07-01" in result.output
    shown = runner.invoke(app, show)
    assert shown.exit_code == 0
    assert "2022-07-01" in shown.output
    state = load_card(card)
    assert state.auth is not None
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    facts = CertificateRegistry(folder).holder_facts(serial)
    assert facts is not None
    port = LocalRegistries(open_registries(folder))
    assert port.registered_on("health_insurance", facts.person_ref) == date(2022, 7, 1)
    assert port.registered_on("public_fund_account", facts.person_ref) is None


def test_registry_register_names_bad_input(tmp_path: Path) -> None:
    card = new_card(tmp_path / "a")
    declined = new_card(tmp_path / "b", "--no-certificate")
    cases = {
        ("--kind", "tax", "--card", str(card)): "--kind",
        ("--kind", "public-fund", "--card", str(card), "--on", "2022-13-01"): "--on",
        ("--kind", "public-fund", "--card", str(declined)): "no user-authentication",
        ("--kind", "public-fund", "--card", str(tmp_path / "none.json")): "--card",
        ("--kind", "public-fund", "--card", str(card), "--ca", str(tmp_path / "x")): "--ca",
    }
    for args, message in cases.items():
        result = runner.invoke(app, ["registry", "register", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_card_info_masks_the_my_number(tmp_path: Path) -> None:
    path = new_card(tmp_path)
    number = load_card(path).holder.my_number
    shown = runner.invoke(app, ["card", "info", "--card", str(path)])
    assert shown.exit_code == 0
    assert number not in shown.output
    assert number[-4:] in shown.output
    revealed = runner.invoke(app, ["card", "info", "--card", str(path), "--show-my-number"])
    assert number in revealed.output


def test_card_info_names_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mynahil-card/1"}')
    result = runner.invoke(app, ["card", "info", "--card", str(bad)])
    assert result.exit_code == 2
    assert "holder" in result.output


def test_unblock_restores_a_locked_pin(tmp_path: Path) -> None:
    """SPEC.md: three wrong PINs lock the card; only the municipal window resets it."""
    path = new_card(tmp_path)
    with CardFile(path) as stored:
        card = emulated_reader(stored.state, stored)
        for _ in range(3):
            with pytest.raises(WrongPin):
                card.verify(Pin.AUTH, "0000")
        with pytest.raises(PinBlocked):
            card.verify(Pin.AUTH, PIN)
    assert load_card(path).pins[PinSlot.AUTH].blocked
    result = runner.invoke(app, ["card", "unblock", "--card", str(path)])
    assert result.exit_code == 0, result.output
    assert load_card(path).pins[PinSlot.AUTH].tries_left == 3
    result = runner.invoke(app, ["card", "unblock", "--card", str(path), "--new-pin", "4321"])
    assert result.exit_code == 0
    emulated_reader(load_card(path)).verify(Pin.AUTH, "4321")


def test_unblock_refuses_a_card_in_a_reader(tmp_path: Path) -> None:
    path = new_card(tmp_path)
    with CardFile(path):
        result = runner.invoke(app, ["card", "unblock", "--card", str(path)])
    assert result.exit_code == 2
    assert "in use" in result.output


def test_attach_serves_the_card_to_a_vpcd_until_it_closes(tmp_path: Path) -> None:
    """`card attach --card PATH --vpcd HOST:PORT` as a process; the harness plays vpcd."""
    path = new_card(tmp_path)
    listener = VpcdListenerTransport("127.0.0.1", 0, wait_seconds=20)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mynahil",
            "card",
            "attach",
            "--card",
            str(path),
            "--vpcd",
            f"127.0.0.1:{listener.port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert listener.connect() == bytes.fromhex("3BE000FF8131FE4514")
        card = MyNumberCard(listener)
        with pytest.raises(WrongPin):
            card.verify(Pin.AUTH, "0000")
        assert card.read_auth_certificate()
    finally:
        listener.close()
    assert process.wait(timeout=15) == 0
    assert load_card(path).pins[PinSlot.AUTH].tries_left == 2


def test_attach_reports_an_unreachable_vpcd(tmp_path: Path) -> None:
    path = new_card(tmp_path)
    start = time.monotonic()
    result = runner.invoke(
        app,
        [
            "card",
            "attach",
            "--card",
            str(path),
            "--vpcd",
            "127.0.0.1:9",
            "--connect-timeout",
            "0.5",
        ],
    )
    assert result.exit_code == 2
    assert "cannot reach a vpcd" in result.output
    assert time.monotonic() - start < 10
    bad = runner.invoke(app, ["card", "attach", "--card", str(path), "--vpcd", "host:port"])
    assert bad.exit_code == 2
    assert "port must be a number" in bad.output


def test_card_info_reads_the_card_info_and_card_face_aps(tmp_path: Path) -> None:
    """Issue 14: `card info` shows what a reader reads (My Number masked) and writes the face."""
    from PIL import Image

    path = new_card(tmp_path, "--security-code", "0427")
    state = load_card(path)
    assert state.security_code == "0427"
    shown = runner.invoke(app, ["card", "info", "--card", str(path), "--face-images",
                                str(tmp_path / "face")])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert state.holder.my_number not in shown.output
    assert "card-face AP" in shown.output
    assert "verifies" in shown.output
    formats = {p.name: Image.open(p).format for p in (tmp_path / "face").iterdir()}
    assert formats == {"name.png": "PNG", "address.png": "PNG", "photo.jp2": "JPEG2000",
                       "security-code.png": "PNG", "my-number.png": "PNG"}  # fmt: skip


def test_verify_info_tells_genuine_from_altered_data(tmp_path: Path) -> None:
    import base64
    import json

    path = new_card(tmp_path)
    genuine = runner.invoke(app, ["card", "verify-info", "--card", str(path)])
    assert genuine.exit_code == 0, genuine.output
    assert "card-info AP: genuine" in genuine.output
    assert "card-face AP: genuine" in genuine.output
    data = json.loads(path.read_text(encoding="utf-8"))
    ef3 = bytearray(base64.b64decode(data["signed"]["info_signature"]))
    ef3[-1] ^= 1
    data["signed"]["info_signature"] = base64.b64encode(bytes(ef3)).decode()
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    altered = runner.invoke(app, ["card", "verify-info", "--card", str(path)])
    assert altered.exit_code == 1, altered.output
    assert "NOT genuine" in altered.output
    assert "EF 0003" in altered.output
    no_root = runner.invoke(
        app, ["card", "verify-info", "--card", str(path), "--root", str(tmp_path / "none.pem")]
    )
    assert no_root.exit_code == 2
    assert "--root" in no_root.output
