"""The operator suite: a payment service's side of the point system, certified against the
harness's platform (the harness plays the platform and a holder who applied at the service).

Tests run in file order: the early ones stay far below the 5,000-yen cap, the last one
reaches it. A test that measures what the service credits for its own charges starts from the
credit once it matches the platform's grants so far (``credit_so_far``): a service may book an
earlier test's grant after that test ended, and that is not this test's credit.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.conformance.operator_harness import OperatorHarness
from mynahil.reference_impl.points import Outcome
from mynahil.reference_impl.points.signing import Signer


def _verify_body(h: OperatorHarness, code: str, account: str | None = None) -> bytes:
    return json.dumps(
        {
            "service_id": h.operator.service_id,
            "account_id": account or h.account_id,
            "security_code": code,
        }
    ).encode()


@pytest.mark.requirement("OP-VERIFY-001", "SPEC-POINTS-002")
def test_verify_confirms_the_right_code_only(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    assert h.verify(_verify_body(h, h.security_code)).json() == {"valid": True}
    assert h.verify(_verify_body(h, "000000x")).json() == {"valid": False}
    assert h.verify(_verify_body(h, h.security_code, "no-such-account")).json() == {"valid": False}


@pytest.mark.requirement("OP-VERIFY-002")
def test_verify_refuses_unsigned_forged_and_replayed_calls(
    operator_harness: OperatorHarness,
) -> None:
    h = operator_harness
    body = _verify_body(h, h.security_code)
    assert h.verify(body, headers={}).status_code == 401, "an unsigned call was answered"
    forger = Signer("platform", Ed25519PrivateKey.generate())
    forged = forger.headers("POST", "/v1/verify-account", body)
    assert h.verify(body, headers=forged).status_code == 401, "a forged call was answered"
    signed = h.platform_signer.headers("POST", "/v1/verify-account", body)
    assert h.verify(body, headers=signed).status_code == 200
    assert h.verify(body, headers=signed).status_code == 401, "a replayed call was answered"


@pytest.mark.requirement("OP-REPORT-001", "SPEC-POINTS-001")
def test_a_charge_is_granted_once(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    before = h.granted()
    charge = h.till(4000)
    assert h.decision(str(charge["transaction_id"])).points == 1000
    time.sleep(min(1.0, h.operator.wait_s / 10))  # room for a retry sent after the answer
    assert h.granted() - before == 1000, "the platform granted this charge more than once"


@pytest.mark.requirement("OP-REPORT-002")
def test_a_lost_answer_is_sent_again_and_granted_once(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    start_granted, start_credited, start_lost = h.granted(), h.credit_so_far(), h.answers.lost
    h.lose_next_answer()
    charge = h.till(2000)
    assert h.decision(str(charge["transaction_id"])).points == 500
    assert h.answers_lost(start_lost) > start_lost, (
        "the service sent no report whose answer could be lost"
    )
    time.sleep(min(1.0, h.operator.wait_s / 10))  # room for a retry under new keys
    assert h.granted() - start_granted == 500, "the platform granted this charge more than once"
    credited = h.credited_settles(expected=start_credited + 500) - start_credited
    assert credited == 500, (
        f"the platform granted 500 points but its answer was lost; the service credits "
        f"{credited}: it must send the same report again and book the answer"
    )


@pytest.mark.requirement("SPEC-POINTS-003")
def test_a_charge_made_before_the_application_earns_nothing(
    operator_harness: OperatorHarness,
) -> None:
    h = operator_harness
    start_granted, start_credited = h.granted(), h.credit_so_far()
    made_at = (h.applied_at - timedelta(hours=1)).replace(microsecond=0)
    charge = h.till(3000, occurred_at=made_at.isoformat())
    decided = h.decision(str(charge["transaction_id"]))
    assert abs(decided.occurred_at - made_at) < timedelta(seconds=1), (
        f"the service reported a charge made at {made_at.isoformat()} as made at "
        f"{decided.occurred_at.isoformat()}: it must report when the charge happened"
    )
    assert decided.outcome is Outcome.BEFORE_APPLICATION
    assert decided.points == 0
    assert h.granted() == start_granted
    credited = h.credited_settles(expected=start_credited) - start_credited
    assert credited == 0, f"the service credited {credited} points for it"


@pytest.mark.requirement("SPEC-POINTS-005")
def test_no_points_for_an_account_nobody_applied_with(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    account, _ = h.open_account("Holder Who Never Applied")
    charge = h.till(4000, account_id=account)
    decided = h.decision(str(charge["transaction_id"]))
    assert decided.outcome is Outcome.NO_APPLICATION
    assert decided.points == 0
    credited = h.credited_settles(account)
    assert credited == 0, f"the service credited {credited} points that nobody granted"


@pytest.mark.requirement("OP-REFUND-001")
def test_a_refund_takes_its_points_back(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    start_granted, start_credited = h.granted(), h.credit_so_far()
    charge = h.till(2000)
    if h.decision(str(charge["transaction_id"])).points == 0:
        pytest.skip("the cap is reached: nothing to take back")
    refund = h.till(2000, kind="refund", refund_of=charge["transaction_id"])
    assert h.decision(str(refund["transaction_id"])).outcome is Outcome.TAKEN_BACK
    assert h.granted() == start_granted
    assert h.credited_settles(expected=start_credited) == start_credited


@pytest.mark.requirement("OP-CAP-001", "SPEC-POINTS-001")
def test_credited_points_follow_the_platform_up_to_the_cap(
    operator_harness: OperatorHarness,
) -> None:
    h = operator_harness
    for _ in range(3):
        h.decision(str(h.till(10_000)["transaction_id"]))
    assert h.granted() == 5000, "the holder's grants should have reached the 5,000-yen cap"
    credited = h.credited_settles()
    assert credited == h.granted(), (
        f"the service credited {credited} points; the platform granted {h.granted()}"
    )
