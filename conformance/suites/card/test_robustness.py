"""Robustness: a removed card and a faulty field (emulated cards behind ``FaultyCard``).

The client policy checked here is the one every MyKey client should follow: SELECT and READ
BINARY are idempotent and are retried after a spurious status word or a damaged answer; a
certificate is only accepted once it parses and chains to the CA; a VERIFY is never re-sent
blindly (a lost answer may have cost a try): the counter is queried instead.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mynahil.card import CardError, MyNumberCard, Pin
from mynahil.card_emulator import FaultProfile, FaultyCard, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PIN
from mynahil.conformance.plugin import CardUnderTest
from mynahil.transports import CardRemovedError, TransportError

ATTEMPTS = 8


def _read_certificate(api: MyNumberCard, ca: x509.Certificate) -> bytes:
    """The auth certificate, retried until it parses and chains to ``ca``."""
    for _attempt in range(ATTEMPTS):
        api.forget_selection()
        try:
            der = api.read_auth_certificate()
            x509.load_der_x509_certificate(der).verify_directly_issued_by(ca)
        except CardRemovedError:
            raise
        except (CardError, TransportError, ValueError, InvalidSignature):
            continue  # idempotent: read again
        return der
    raise AssertionError(f"no valid certificate in {ATTEMPTS} attempts")


@pytest.mark.requirement("JPKI-ROB-001")
def test_removal_is_clean_and_reinsertion_recovers(card_under_test: CardUnderTest) -> None:
    card, wire = card_under_test.another_emulated_card(faults="remove_after=3;seed=1")
    assert isinstance(card, FaultyCard)
    api = MyNumberCard(wire)
    with pytest.raises(CardRemovedError):
        api.read_auth_certificate()
    with pytest.raises(TransportError):
        api.read_auth_certificate()  # still gone: an error, never stale or partial data
    card.profile = FaultProfile(seed=1)
    card.reinsert()
    wire.connect()
    api.forget_selection()
    assert x509.load_der_x509_certificate(api.read_auth_certificate())


@pytest.mark.requirement("JPKI-ROB-002")
@pytest.mark.parametrize(
    "faults",
    [
        "latency=lognormal:6,0.35;seed=2",
        "spurious_sw_probability=0.15;seed=3",
        "corrupt_probability=0.1;seed=4",
        "latency=fixed:1;spurious_sw_probability=0.1;corrupt_probability=0.05;seed=5",
    ],
    ids=["latency", "spurious-sw", "bit-flips", "all"],
)
def test_faulty_field_reads_retry_to_the_right_certificate(
    card_under_test: CardUnderTest, faults: str
) -> None:
    clean, clean_wire = card_under_test.another_emulated_card()
    assert not isinstance(clean, FaultyCard)
    clean_api = MyNumberCard(clean_wire)
    truth = clean_api.read_auth_certificate()
    ca = x509.load_der_x509_certificate(clean_api.read_auth_ca_certificate())
    api = emulated_reader(FaultyCard(clean, FaultProfile.parse(faults)))
    assert _read_certificate(api, ca) == truth, "a damaged certificate was accepted"


@pytest.mark.requirement("JPKI-ROB-002")
def test_a_lost_verify_answer_is_queried_not_resent(card_under_test: CardUnderTest) -> None:
    card, wire = card_under_test.another_emulated_card()
    pin = card_under_test.pin or DEFAULT_PIN
    field = emulated_reader(FaultyCard(card, FaultProfile(spurious_sw_probability=1.0, seed=6)))
    with pytest.raises(CardError):  # every answer is spurious: the VERIFY's fate is unknown
        field.verify(Pin.AUTH, pin)
    # Back on a good field the client asks before it tries again: nothing was lost.
    api = MyNumberCard(wire)
    assert api.tries_left(Pin.AUTH) == 3
    api.verify(Pin.AUTH, pin)
    assert api.tries_left(Pin.AUTH) == 3
