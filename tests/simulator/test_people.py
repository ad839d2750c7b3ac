from __future__ import annotations

import numpy as np
import pytest

from mynahil.simulator.people import enter_pins, lockout_probability, read_cards
from mynahil.simulator.scenario import PinModel

PIN = PinModel(
    wrong_probability=0.2, forgot_share=0.1, forgot_wrong_probability=0.7,
    entries_per_application=2, lockout_after=3, window_visit_probability=1.0,
    window_visit_after_days=3.0,
)  # fmt: skip


def test_lockout_needs_three_wrong_entries_in_a_row() -> None:
    """SPEC.md "The card and its PIN": three consecutive wrong entries lock it."""
    assert lockout_probability(0.5, PIN) == pytest.approx(1 - (1 - 0.125) ** 2)
    assert lockout_probability(0.0, PIN) == 0.0
    assert lockout_probability(1.0, PIN) == 1.0


def test_pin_cohorts_match_following_people_one_by_one() -> None:
    rng = np.random.default_rng(3)
    people = np.array([200_000])
    outcome = enter_pins(rng, people, PIN)
    slow = np.random.default_rng(4)
    locked = 0
    for _ in range(20_000):
        wrong = PIN.forgot_wrong_probability if slow.random() < PIN.forgot_share else 0.2
        for _ in range(PIN.entries_per_application):
            streak = 0
            while slow.random() < wrong and streak < 3:
                streak += 1
            if streak == 3:
                locked += 1
                break
    assert outcome.locked[0] / 200_000 == pytest.approx(locked / 20_000, rel=0.1)
    assert outcome.done[0] + outcome.locked[0] == 200_000


def test_card_reads_fail_only_after_every_retry() -> None:
    rng = np.random.default_rng(1)
    reading = read_cards(rng, np.array([100_000, 100_000]), np.array([0.5, 0.0]), np.array([3, 3]))
    assert reading.unreadable[0] / 100_000 == pytest.approx(0.125, rel=0.05)
    assert reading.unreadable[1] == 0
    assert reading.failed_reads[1] == 0
    assert (reading.read + reading.unreadable == 100_000).all()
