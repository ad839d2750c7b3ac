"""Time budgets (SPEC.md: Devices and reading; the device profile's ``budget_ms``)."""

from __future__ import annotations

import time

import pytest

from mynahil.card import MyNumberCard
from mynahil.conformance.plugin import CardUnderTest

PHONE_BUDGET_MS = 5000.0  # SPEC.md: the phone stays on the card 5 s or more
CHALLENGE = b"\x01" * 32


def _timed_mykey(api: MyNumberCard, pin: str) -> float:
    """What a MyKey client does with the card: read the certificate, verify, sign. In ms."""
    start = time.perf_counter()
    api.authenticate(pin, CHALLENGE)
    return (time.perf_counter() - start) * 1000


@pytest.mark.requirement("JPKI-TIME-001")
def test_mykey_read_and_sign_fits_the_budget(card_under_test: CardUnderTest) -> None:
    if not card_under_test.pin:
        pytest.skip("give --pin to time the signing on a real card")
    budget = card_under_test.target.device.budget_ms
    elapsed = _timed_mykey(card_under_test.api, card_under_test.pin)
    card_under_test.measure("MyKey read and sign", elapsed, budget, "ms")
    assert elapsed <= budget, f"{elapsed:.0f} ms > budget {budget:.0f} ms"


@pytest.mark.requirement("SPEC-CARD-005")
def test_on_a_phone_read_and_sign_fit_five_seconds(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    if not card.pin:
        pytest.skip("give --pin to time the signing on a real card")
    budget = PHONE_BUDGET_MS
    if card.target.drives_emulated_card:
        # the emulated card behind a phone's NFC field, whatever the target's own profile
        _card, wire = card.another_emulated_card(faults="nfc-phone", interface="contactless")
        api = MyNumberCard(wire)
    elif card.target.device.contactless:
        api = card.api
        budget = min(PHONE_BUDGET_MS, card.target.device.budget_ms)
    else:
        pytest.skip("the device profile is a contact reader, not a phone")
    elapsed = _timed_mykey(api, card.pin)
    card.measure("MyKey read and sign on a phone", elapsed, budget, "ms")
    assert elapsed <= budget, f"{elapsed:.0f} ms > {budget:.0f} ms on a phone"
