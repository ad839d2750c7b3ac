"""Operator profiles: what a payment vendor writes to have their service certified."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mynahil.conformance.operator_profile import OperatorProfileError, load_operator_profile
from mynahil.paths import scenarios_dir

KEY = base64.b64encode(bytes(range(32))).decode()
GOOD = f"""name = "Vendor Pay"
target = "operator:https://pay.example.test/"
operator_id = "vendor-pay"
service_id = "vendor-pay-qr"
public_key = "{KEY}"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vendor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_from_the_target(tmp_path: Path) -> None:
    profile = load_operator_profile(_write(tmp_path, GOOD))
    assert profile.url == "https://pay.example.test"
    assert profile.target == "operator:https://pay.example.test"
    assert profile.verify_url == "https://pay.example.test/v1/verify-account"
    assert (profile.platform_host, profile.platform_port) == ("127.0.0.1", 8700)
    assert profile.platform_url == "http://127.0.0.1:8700"
    assert profile.public_key == bytes(range(32))
    assert profile.harness_dir.is_absolute()


def test_the_harness_keeps_its_key_under_mynahil_home_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYNAHIL_HOME", str(tmp_path / "home"))
    profile = load_operator_profile(_write(tmp_path, GOOD))
    assert profile.harness_dir.parent == tmp_path / "home" / "operator-harness"


def test_a_wildcard_listen_address_is_reached_on_loopback(tmp_path: Path) -> None:
    profile = load_operator_profile(_write(tmp_path, GOOD + 'platform_listen = "0.0.0.0:9000"\n'))
    assert profile.platform_url == "http://127.0.0.1:9000"


def test_the_command_line_target_overrides_the_files(tmp_path: Path) -> None:
    profile = load_operator_profile(_write(tmp_path, GOOD), "operator:http://10.0.0.5:81")
    assert profile.verify_url == "http://10.0.0.5:81/v1/verify-account"


def test_a_pem_public_key_beside_the_profile(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "pub.pem").write_bytes(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    profile = load_operator_profile(_write(tmp_path, GOOD.replace(KEY, "pub.pem")))
    assert profile.public_key == key.public_bytes_raw()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('name = "Vendor Pay"\n', ""),
            r"name: missing \(the service's name",
        ),
        ((KEY, "bm90IGEga2V5"), "public_key: an Ed25519 key is 32 bytes"),
        ((KEY, "not base64!"), "public_key: neither base64 nor a PEM file"),
        (("operator:https://pay.example.test/", "pcsc:Reader"), "target: operator:URL"),
        (("operator:https://pay.example.test/", "operator:ftp://x"), "target: an http://"),
        (("name =", 'colour = "red"\nname ='), "colour: unknown key"),
        (
            ("name =", "wait_s = 0\nname ="),
            r"wait_s: must be a positive number at most 600, got 0 \(seconds",
        ),
        (("name =", 'platform_listen = "8700"\nname ='), "platform_listen: HOST:PORT"),
        (("name =", 'ca_file = "missing.pem"\nname ='), "ca_file: no file"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(OperatorProfileError, match=message) as caught:
        load_operator_profile(path)
    assert str(path) in str(caught.value)


def test_the_example_profile_needs_only_the_vendors_key(tmp_path: Path) -> None:
    example = (scenarios_dir() / "operators" / "example.toml").read_text(encoding="utf-8")
    with pytest.raises(OperatorProfileError, match="public_key"):
        load_operator_profile(_write(tmp_path, example))
    filled = example.replace("REPLACE-WITH-YOUR-PUBLIC-KEY", KEY)
    assert load_operator_profile(_write(tmp_path, filled)).operator_id == "example-pay"
