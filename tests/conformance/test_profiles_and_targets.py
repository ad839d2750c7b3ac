"""Device profiles (validated with errors naming the field) and the target registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mynahil.conformance import TargetError, parse_target
from mynahil.conformance.targets import (
    TARGET_KINDS,
    DeviceProfile,
    Target,
    TargetKind,
    load_device_profile,
    register_target_kind,
)

from .conftest import SCENARIOS


@pytest.mark.parametrize(
    "path", sorted((SCENARIOS / "devices").glob("*.toml")), ids=lambda p: p.stem
)
def test_bundled_profiles_load(path: Path) -> None:
    profile = load_device_profile(path)
    assert profile.name
    assert profile.budget_ms > 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "budget_ms": -1}, "budget_ms: must be a positive number"),
        ({"name": "x", "budget_ms": True}, "budget_ms"),
        ({"name": "x", "expected_atr": "zz"}, "expected_atr: must be whole bytes of hex"),
        ({"name": "x", "expected_atr": "3BE"}, "expected_atr: must be whole bytes of hex"),
        ({"name": "x", "expected_atr": "3BE0", "atr_mask": "FF"}, "atr_mask: 1 bytes"),
        ({"name": ""}, "name"),
        ({"name": "x", "interface": "bluetooth"}, "interface: must be contact or contactless"),
        ({"name": "x", "colour": "red"}, "colour: unknown key"),
        ({"name": "x", "target": "usb:1"}, "target: unknown target"),
        ({"name": "x", "faults": "nonexistent-profile"}, "faults:"),
    ],
)
def test_device_profile_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        DeviceProfile.from_mapping(data, "profile.toml")


def test_a_profile_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(TargetError, match=r"bad\.toml: not valid TOML"):
        load_device_profile(path)
    with pytest.raises(TargetError, match=r"missing\.toml"):
        load_device_profile(tmp_path / "missing.toml")


def test_atr_mask() -> None:
    profile = DeviceProfile.from_mapping(
        {"name": "x", "expected_atr": "3B 88 80 01 00", "atr_mask": "FF FF FF FF 00"}, "p"
    )
    assert profile.atr_matches(bytes.fromhex("3B88800155"))
    assert not profile.atr_matches(bytes.fromhex("3B88800255"))
    assert not profile.atr_matches(bytes.fromhex("3B888001"))
    assert DeviceProfile("any").atr_matches(b"\x3b")


def test_unknown_targets_are_refused() -> None:
    with pytest.raises(TargetError, match="unknown target"):
        parse_target("usb:whatever")
    with pytest.raises(TargetError, match="no defect"):
        parse_target("card:defect:nonexistent")
    with pytest.raises(TargetError, match="card targets"):
        parse_target("card:elsewhere")
    with pytest.raises(TargetError, match=r"platform defects: .*password_session_shows_id"):
        parse_target("platform:defect:nonexistent")
    with pytest.raises(TargetError, match="platform:sample, platform:defect:NAME or platform:URL"):
        parse_target("platform:localhost:8000")
    with pytest.raises(TargetError, match="operator:URL"):
        parse_target("operator:defect:nonexistent")


@pytest.mark.parametrize(
    ("spec", "suites", "emulated"),
    [("card:inproc", ("card",), True), ("card:vpcd", ("card",), True),
     ("pcsc:Reader 00 00", ("card",), False), ("phone:127.0.0.1:35999", ("card",), False),
     ("realistic:inproc", ("card",), False), ("platform:sample", ("platform",), False),
     ("operator:sample", ("operator",), False)],
)  # fmt: skip
def test_each_kind_selects_its_suites(spec: str, suites: tuple[str, ...], emulated: bool) -> None:
    target = parse_target(spec)
    assert target.suites == suites
    assert target.emulated is emulated


def test_a_new_kind_of_target_slots_in() -> None:
    def build(spec: str, rest: str, device: DeviceProfile | None) -> Target:
        return Target(spec, "lab", rest, None, device or DeviceProfile("lab rig"))

    register_target_kind(TargetKind("lab", ("card", "platform"), False, "lab:NAME", build))
    try:
        target = parse_target("lab:bench-3")
        assert target.suites == ("card", "platform")
        assert target.wire == "bench-3"
    finally:
        del TARGET_KINDS["lab"]


def test_device_profiles_name_the_aps_they_must_read(tmp_path: Path) -> None:
    from mynahil.conformance.targets import bundled_profile

    assert bundled_profile("emulated-contact").applications == ("jpki", "card-info", "card-face")
    assert "card-face" in bundled_profile("phone").applications
    assert bundled_profile("generic-reader").applications == ("jpki", "card-info")
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\napplications = ["jpki", "resident-registry"]\n')
    with pytest.raises(TargetError, match="applications"):
        load_device_profile(path)
