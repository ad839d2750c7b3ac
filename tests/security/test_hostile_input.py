"""No input produces a 5xx (issue #12, item 4): the attacker's examples, and the class.

Each kind of input the platform takes (headers, path parameters, JSON strings, times,
certificate DER) gets hostile values from :mod:`tests.security.strategies` or a crafted
example, on SQLite and PostgreSQL, through the real app. A refusal is a 4xx RFC 9457 problem;
where it involves a card proof, the challenge is consumed and the refusal audited.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mynahil.reference_impl.gateways import LocalAccountCheck
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from mynahil.reference_impl.points import Operator, PaymentService
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from tests.conftest import postgres_schema
from tests.security.strategies import extreme_datetimes, header_values, hostile_text
from tests.support import examples

AS_OF = datetime(2020, 9, 10, 3, tzinfo=UTC)
OPERATOR, SERVICE = "hostile-op", "hostile-pay"
PROBLEM = "application/problem+json"
EXAMPLES = settings(
    max_examples=examples(25),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Site:
    platform: ReferencePlatform
    client: TestClient
    signer: Signer

    def signed(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        headers = self.signer.headers(method, path, body)
        response = self.client.request(
            method, path, content=body, headers={**headers, "content-type": "application/json"}
        )
        return {"status": response.status_code, "json": _json(response.content),
                "type": response.headers.get("content-type", "")}  # fmt: skip

    def audit_tail(self, count: int = 1) -> list[tuple[str, str]]:
        records = list(self.platform.store.audit_records())
        return [(r.action, r.outcome) for r in records[-count:]]


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per store for the module: every test here is refused or decided without
    depending on another's rows (each report has its own keys)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'platform.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture(scope="module")
def site(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    platform = build_platform(
        db_url, tmp_path_factory.mktemp("jlis"), accounts=LocalAccountCheck({}), as_of=AS_OF
    )
    key = Ed25519PrivateKey.generate()
    platform.points.register_operator(
        Operator(OPERATOR, "Hostile Pay", public_key_bytes(key)),
        [PaymentService(SERVICE, OPERATOR, "Hostile Pay")],
    )
    with TestClient(platform.app, raise_server_exceptions=False) as client:
        yield Site(platform, client, Signer(OPERATOR, key))
    problems = platform.points.violations()
    count, broken = platform.store.verify_audit()
    platform.close()
    assert problems == []
    assert broken is None, f"audit chain broken after {count} records: {broken}"


def assert_problem(response: Any, statuses: range = range(400, 500)) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code, body
    assert body["code"], body
    return body


# --- headers --------------------------------------------------------------------------------

SESSION_ENDPOINTS = [
    ("GET", "/v1/mykey/me", None),
    ("PUT", "/v1/mykey/me/password", {"password": "Abcdef12"}),
    ("POST", "/v1/mykey/me/id", {}),
    ("DELETE", "/v1/mykey/me", None),
    ("GET", "/v1/points/me", None),
]


@pytest.mark.parametrize(("method", "path", "body"), SESSION_ENDPOINTS)
def test_a_non_ascii_bearer_token_is_401_on_every_session_endpoint(
    site: Site, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = site.client.request(
        method, path, json=body, headers={"Authorization": "Bearer tök€n".encode()}
    )
    assert assert_problem(response, range(401, 402))["code"] == "session_invalid"


@given(value=header_values())
@EXAMPLES
def test_any_authorization_header_bytes_are_a_4xx(site: Site, value: bytes) -> None:
    for prefix in (b"Bearer ", b""):
        response = site.client.get("/v1/mykey/me", headers={"Authorization": prefix + value})
        assert_problem(response)


@given(value=header_values(), which=st.sampled_from(["signer", "timestamp", "nonce", "signature"]))
@EXAMPLES
def test_any_signature_header_bytes_are_a_4xx(site: Site, value: bytes, which: str) -> None:
    path = f"/v1/operators/{OPERATOR}/applications"
    headers: dict[str, str | bytes] = dict(site.signer.headers("GET", path, b""))
    headers[f"X-Mynahil-{which.title()}"] = value
    assert_problem(site.client.get(path, headers=headers))


def test_a_validly_signed_nonce_with_a_nul_is_a_4xx(site: Site) -> None:
    """Only the operator can sign it, but PostgreSQL could not have stored it (500)."""
    from mynahil.reference_impl.points.signing import string_to_sign

    path = f"/v1/operators/{OPERATOR}/applications"
    timestamp, nonce = str(int(datetime.now(UTC).timestamp())), secrets.token_hex(8) + "\x00"
    signature = site.signer.key.sign(string_to_sign("GET", path, timestamp, nonce, b""))
    headers = {"X-Mynahil-Signer": OPERATOR, "X-Mynahil-Timestamp": timestamp,
               "X-Mynahil-Nonce": nonce.encode(),
               "X-Mynahil-Signature": base64.b64encode(signature).decode()}  # fmt: skip
    problem = assert_problem(site.client.get(path, headers=headers))
    assert problem["code"] == "request_unsigned"


# --- path parameters ------------------------------------------------------------------------


@given(serial=hostile_text(max_size=12))
@EXAMPLES
def test_any_certificate_serial_in_the_path_is_a_4xx(site: Site, serial: str) -> None:
    from urllib.parse import quote

    response = site.client.get(f"/v1/jlis/certificates/{quote(serial, safe='')}")
    assert_problem(response)


def test_a_superscript_digit_is_not_a_serial(site: Site) -> None:
    response = site.client.get("/v1/jlis/certificates/%C2%B2")
    assert assert_problem(response, range(422, 423))["code"] == "invalid_request"


@given(text=hostile_text(max_size=20), where=st.sampled_from(["operator", "month"]))
@EXAMPLES
def test_any_operator_path_parameter_is_a_4xx(site: Site, text: str, where: str) -> None:
    from urllib.parse import quote

    operator = quote(text, safe="") if where == "operator" else OPERATOR
    month = quote(text, safe="") if where == "month" else "2020-09"
    path = f"/v1/operators/{operator}/settlements/{month}"
    if not path.isascii():
        return
    result = site.signed("GET", path, b"")
    assert 400 <= result["status"] < 500, result
    assert result["type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "month", ["0001-01", "1999-12", "2100-01", "9999-12", "2020-09-01", "20200-09", "2020-123"]
)
@pytest.mark.parametrize("what", ["settlements", "reconciliations"])
def test_a_month_outside_2000_to_2099_or_not_written_yyyy_mm_is_a_422(
    site: Site, month: str, what: str
) -> None:
    """``0001-01`` converted to UTC overflowed on SQLite (500)."""
    path = f"/v1/operators/{OPERATOR}/{what}/{month}"
    body = b"" if what == "settlements" else b"transaction_id,kind,amount,points\n"
    result = site.signed("GET" if what == "settlements" else "POST", path, body)
    assert result["status"] == 422, result
    assert "month" in result["json"]["detail"], result


# --- JSON strings ---------------------------------------------------------------------------

HOLDER_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/mykey/sessions/card", {"challenge_id": "c", "certificate": "", "signature": ""}),
    ("/v1/mykey/ids", {"challenge_id": "c", "certificate": "", "signature": "",
                       "chosen_id": "ABCD2345"}),
    ("/v1/mykey/sessions/password", {"mykey_id": "ABCD2345", "password": "x"}),
    ("/v1/points/applications", {"challenge_id": "c", "certificate": "", "signature": "",
                                 "service_id": SERVICE, "account_id": "a", "security_code": "1"}),
    ("/v1/points/bonuses", {"challenge_id": "c", "certificate": "", "signature": "",
                            "campaign_id": "round2", "kind": "health_insurance"}),
]  # fmt: skip


def test_a_nul_in_a_challenge_id_is_422_naming_the_field(site: Site) -> None:
    body = {"challenge_id": "a\x00b", "certificate": "", "signature": ""}
    problem = assert_problem(site.client.post("/v1/mykey/sessions/card", json=body))
    assert problem["code"] == "invalid_request"
    assert "challenge_id" in problem["detail"]
    assert "NUL" in problem["detail"]


@given(
    target=st.sampled_from(HOLDER_BODIES),
    field=st.integers(0, 10),
    text=hostile_text(max_size=30),
)
@EXAMPLES
def test_hostile_strings_in_holder_bodies_are_a_4xx(
    site: Site, target: tuple[str, dict[str, Any]], field: int, text: str
) -> None:
    path, body = target
    name = sorted(body)[field % len(body)]
    response = site.client.post(path, json={**body, name: text})
    problem = assert_problem(response)
    if "\x00" in text:
        assert problem["code"] == "invalid_request"
        assert name in problem["detail"]


def _report(**overrides: Any) -> dict[str, Any]:
    unique = secrets.token_hex(8)
    report = {
        "idempotency_key": f"k-{unique}",
        "transaction_id": f"t-{unique}",
        "service_id": SERVICE,
        "account_id": "acct-1",
        "kind": "charge",
        "amount": 1000,
        "occurred_at": "2020-09-10T12:00:00+09:00",
    }
    return {**report, **overrides}


def _batch(*reports: dict[str, Any]) -> bytes:
    return json.dumps({"transactions": list(reports)}).encode()


TRANSACTIONS = f"/v1/operators/{OPERATOR}/transactions"


@given(
    field=st.sampled_from(
        ["idempotency_key", "transaction_id", "service_id", "account_id", "original_transaction_id"]
    ),
    text=hostile_text(max_size=60),
)
@EXAMPLES
def test_hostile_strings_in_a_report_are_decided_or_a_4xx(
    site: Site, field: str, text: str
) -> None:
    result = site.signed("POST", TRANSACTIONS, _batch(_report(**{field: text})))
    assert result["status"] < 500, result
    if "\x00" in text:
        assert result["status"] == 422, result
        assert field in result["json"]["detail"], result


# --- times ----------------------------------------------------------------------------------


@given(moment=extreme_datetimes())
@EXAMPLES
def test_a_time_at_the_edge_of_the_range_refuses_the_batch_with_a_422(
    site: Site, moment: str
) -> None:
    good = _report()
    edge = _report(occurred_at=moment)
    result = site.signed("POST", TRANSACTIONS, _batch(good, edge))
    assert result["status"] == 422, result
    assert "transactions" in result["json"]["detail"], result
    assert "occurred_at" in result["json"]["detail"], result


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ("1999-12-31T23:59:59Z", 422),
        ("2000-01-01T00:00:00Z", 200),
        ("2099-12-31T23:59:59Z", 200),
        ("2100-01-01T08:59:59+09:00", 200),
        ("2100-01-01T00:00:00Z", 422),
    ],
)
def test_the_range_of_report_times_is_2000_to_2099(site: Site, moment: str, status: int) -> None:
    result = site.signed("POST", TRANSACTIONS, _batch(_report(occurred_at=moment)))
    assert result["status"] == status, result


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "1000"),
        ("amount", 1000.0),
        ("amount", True),
        ("amount", [1000]),
        ("occurred_at", 1_599_706_800),
        ("occurred_at", True),
        ("kind", 1),
    ],
)
def test_numbers_and_times_are_exactly_the_documented_types(
    site: Site, field: str, value: object
) -> None:
    result = site.signed("POST", TRANSACTIONS, _batch(_report(**{field: value})))
    assert result["status"] == 422, result
    assert result["json"]["code"] == "invalid_request"
    assert f"transactions.0.{field}" in result["json"]["detail"], result


def test_a_well_typed_report_is_still_decided(site: Site) -> None:
    result = site.signed("POST", TRANSACTIONS, _batch(_report()))
    assert result["status"] == 200, result
    assert result["json"]["decisions"][0]["outcome"] == "no_application"


# --- certificates ---------------------------------------------------------------------------

SHA256_OID = bytes.fromhex("0609608648016503040201")
UNKNOWN_HASH_OID = bytes.fromhex("060960864801650304027f")  # 2.16.840.1.101.3.4.2.127


def pss_certificate_over_an_unknown_hash(platform: ReferencePlatform) -> bytes:
    """A certificate naming the J-LIS user-authentication CA as issuer, signed with RSASSA-PSS
    whose hash is an OID nobody implements (the attacker's own key signs; it never verifies)."""
    _key, anchor = platform.jlis.ca.signer("auth")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = platform.mykey.clock()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")]))
        .issuer_name(anchor.subject)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(
            key,
            hashes.SHA256(),
            rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        )
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert SHA256_OID in der
    return der.replace(SHA256_OID, UNKNOWN_HASH_OID)


CARD_ENDPOINTS = [
    ("/v1/mykey/ids", "issue", "issue", {}),
    ("/v1/mykey/sessions/card", "login", "login_card", {}),
    ("/v1/points/applications", "login", "apply_card",
     {"service_id": SERVICE, "account_id": "acct-1", "security_code": "123456"}),
    ("/v1/points/bonuses", "login", "bonus",
     {"campaign_id": "round2", "kind": "health_insurance"}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "purpose", "action", "extra"), CARD_ENDPOINTS)
def test_a_pss_certificate_over_an_unknown_hash_is_refused_consumed_and_audited(
    site: Site, path: str, purpose: str, action: str, extra: dict[str, str]
) -> None:
    der = pss_certificate_over_an_unknown_hash(site.platform)
    challenge = site.client.post("/v1/mykey/challenges", json={"purpose": purpose}).json()
    body = {
        "challenge_id": challenge["challenge_id"],
        "certificate": base64.b64encode(der).decode(),
        "signature": base64.b64encode(b"\x01" * 256).decode(),
        **extra,
    }
    first = assert_problem(site.client.post(path, json=body), range(403, 404))
    assert first["code"] == "certificate_untrusted"
    assert site.audit_tail() == [(action, "refused:certificate_untrusted")]
    again = assert_problem(site.client.post(path, json=body), range(409, 410))
    assert again["code"] == "challenge_used"
