"""The operator suite: a payment service's side of the point system, certified against the
reference platform (the harness plays the platform and a holder who applied)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.operator_harness import SERVICE_ID, OperatorHarness
from reference_impl.points.signing import Signer


def _verify_body(h: OperatorHarness, code: str, account: str | None = None) -> bytes:
    return json.dumps(
        {"service_id": SERVICE_ID, "account_id": account or h.account_id, "security_code": code}
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
    h.till(4000)
    assert h.granted() - before == 1000, "the platform granted this charge more than once"


@pytest.mark.requirement("OP-REFUND-001")
def test_a_refund_takes_its_points_back(operator_harness: OperatorHarness) -> None:
    h = operator_harness
    start_granted, start_credited = h.granted(), h.credited()
    charge = h.till(2000)
    if charge["points"] == 0:
        pytest.skip("the cap is reached: nothing to take back")
    refund = h.till(2000, kind="refund", refund_of=charge["transaction_id"])
    assert refund["outcome"] == "taken_back"
    assert h.granted() == start_granted
    assert h.credited() == start_credited


@pytest.mark.requirement("OP-CAP-001", "SPEC-POINTS-001")
def test_credited_points_follow_the_platform_up_to_the_cap(
    operator_harness: OperatorHarness,
) -> None:
    h = operator_harness
    for _ in range(3):
        h.till(10_000)
    assert h.granted() <= 5000
    assert h.credited() == h.granted(), (
        f"the service credited {h.credited()} points; the platform granted {h.granted()}"
    )
