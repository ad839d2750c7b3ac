"""Seeded, reproducible faults (issue: latency, removal, corruption, spurious status words)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mynahil.card_emulator import (
    EmulatedCard,
    FaultProfile,
    FaultyCard,
    Latency,
    load_fault_profile,
)
from mynahil.card_emulator.state import CardState
from mynahil.transports import CardPulled

READ_TOKEN = [
    bytes.fromhex(a) for a in ("00A4040C0AD392F000260100000001", "00A4020C020006", "00B0000020")
]


def run(card: FaultyCard, n: int) -> list[bytes | str]:
    out: list[bytes | str] = []
    for i in range(n):
        try:
            out.append(card.transmit(READ_TOKEN[min(i, 2)]))
        except CardPulled:
            out.append("pulled")
            card.reinsert()
    return out


def test_same_seed_same_faults(card_state: CardState) -> None:
    profile = FaultProfile(
        seed=11, corrupt_probability=0.2, spurious_sw_probability=0.1, remove_probability=0.05
    )
    first = run(FaultyCard(EmulatedCard(card_state), profile, sleep=lambda _s: None), 300)
    second = run(FaultyCard(EmulatedCard(card_state), profile, sleep=lambda _s: None), 300)
    other = run(
        FaultyCard(EmulatedCard(card_state), profile.with_seed(12), sleep=lambda _s: None), 300
    )
    assert first == second
    assert first != other
    assert "pulled" in first


def test_removal_after_n_apdus_and_reinsertion(card_state: CardState) -> None:
    card = FaultyCard(EmulatedCard(card_state), FaultProfile(remove_after=2))
    card.transmit(READ_TOKEN[0])
    card.transmit(READ_TOKEN[1])
    with pytest.raises(CardPulled):
        card.transmit(READ_TOKEN[2])
    with pytest.raises(CardPulled):
        card.transmit(READ_TOKEN[0])  # stays out until put back
    card.reinsert()
    assert card.transmit(READ_TOKEN[0]) == b"\x90\x00"
    assert card.injected["removal"] == 1


def test_corruption_flips_exactly_one_bit(card_state: CardState) -> None:
    clean = EmulatedCard(card_state)
    faulty = FaultyCard(EmulatedCard(card_state), FaultProfile(seed=3, corrupt_probability=1.0))
    for apdu in READ_TOKEN:
        good, bad = clean.transmit(apdu), faulty.transmit(apdu)
        assert len(good) == len(bad)
        assert sum(bin(a ^ b).count("1") for a, b in zip(good, bad, strict=True)) == 1


def test_spurious_status_words(card_state: CardState) -> None:
    faulty = FaultyCard(
        EmulatedCard(card_state), FaultProfile(spurious_sw_probability=1.0, spurious_sws=(0x6F00,))
    )
    assert faulty.transmit(READ_TOKEN[0]) == b"\x6f\x00"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("fixed:5", [0.005] * 3), ("uniform:2,2", [0.002] * 3), ("exponential:0", [0.0] * 3)],
)
def test_latency_uses_the_distribution(
    card_state: CardState, spec: str, expected: list[float]
) -> None:
    slept: list[float] = []
    faulty = FaultyCard(
        EmulatedCard(card_state), FaultProfile(latency=Latency.parse(spec)), sleep=slept.append
    )
    for apdu in READ_TOKEN:
        faulty.transmit(apdu)
    assert slept == pytest.approx(expected)


def test_lognormal_latency_has_the_stated_median() -> None:
    import random
    import statistics

    rng = random.Random(1)
    samples = [Latency.parse("lognormal:8,0.5").sample_ms(rng) for _ in range(4000)]
    assert statistics.median(samples) == pytest.approx(8, rel=0.05)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latency=gamma:1", "unknown distribution"),
        ("latency=normal:1", "takes 2"),
        ("remove_probability=2", "between 0 and 1"),
        ("colour=red", "unknown key"),
        ("remove_after", "not key=value"),
        ("seed=abc", "seed"),
    ],
)
def test_bad_profiles_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultProfile.parse(spec)


def test_profile_files(tmp_path: Path) -> None:
    good = tmp_path / "shaky.toml"
    good.write_text('[faults]\nlatency = "fixed:3"\nremove_after = 7\nspurious_sws = ["6F00"]\n')
    profile = load_fault_profile(str(good))
    assert profile.name == "shaky"
    assert profile.remove_after == 7
    assert profile.spurious_sws == (0x6F00,)
    bad = tmp_path / "bad.toml"
    bad.write_text("[faults\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_fault_profile(str(bad))
    with pytest.raises(ValueError, match="no such fault profile"):
        load_fault_profile(str(tmp_path / "missing.toml"))


def test_bundled_profiles_load() -> None:
    folder = Path(__file__).resolve().parents[2] / "scenarios" / "faults"
    names = sorted(p.stem for p in folder.glob("*.toml"))
    assert names
    for path in folder.glob("*.toml"):
        assert not load_fault_profile(str(path)).is_clean
