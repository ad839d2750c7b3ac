"""The platform over HTTP: the MyKey flows, problem details, J-LIS endpoints, OpenAPI."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient

from mynahil.card_emulator import CardState, emulated_reader
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle, ocsp_request_for, random_holder
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from mynahil.reference_impl.staff import Role
from tests.support import PASSWORD, PIN

OPENAPI = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


@pytest.fixture
def platform(store_url: str, tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(store_url, tmp_path / "jlis")
    yield built
    built.close()


@pytest.fixture
def http(platform: ReferencePlatform) -> Iterator[TestClient]:
    with TestClient(platform.app) as client:
        yield client


def new_card(platform: ReferencePlatform, key_pool: KeyPool, seed: int = 1) -> CardState:
    import random
    from datetime import date

    return lifecycle.issue(
        platform.jlis.ca, platform.jlis.registry, random_holder(random.Random(seed)),
        pin=PIN, password=PASSWORD, issued_on=date.today(), keys=key_pool,
    )  # fmt: skip


def test_reserve_and_log_in_over_http(
    platform: ReferencePlatform, http: TestClient, key_pool: KeyPool
) -> None:
    state = new_card(platform, key_pool)
    client = PlatformClient(http)
    mykey_id = client.reserve(emulated_reader(state), PIN)
    assert client.reserve(emulated_reader(state), PIN) == mykey_id
    token = client.login(emulated_reader(state), PIN)
    shown = http.get("/v1/mykey/me", headers={"Authorization": f"Bearer {token}"})
    assert shown.json() == {"mykey_id": mykey_id}
    assert (
        http.put(
            "/v1/mykey/me/password",
            json={"password": "secret123"},
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 204
    )
    login = http.post(
        "/v1/mykey/sessions/password", json={"mykey_id": mykey_id, "password": "secret123"}
    )
    assert login.status_code == 201


def test_errors_are_problem_details(http: TestClient) -> None:
    replay = http.post(
        "/v1/mykey/ids", json={"challenge_id": "nope", "certificate": "AA==", "signature": "AA=="}
    )
    assert replay.status_code == 400
    assert replay.headers["content-type"].startswith("application/problem+json")
    body = replay.json()
    assert body["code"] == "challenge_unknown"
    assert body["type"].endswith("/challenge_unknown")
    assert body["status"] == 400
    bad = http.post("/v1/mykey/challenges", json={"purpose": "shopping"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_request"
    assert "purpose" in bad.json()["detail"]
    assert http.get("/v1/mykey/me").json()["code"] == "session_invalid"
    assert http.get("/v1/nowhere").json()["code"] == "not_found"


def test_client_advice_for_refusals(
    platform: ReferencePlatform, http: TestClient, key_pool: KeyPool
) -> None:
    state = new_card(platform, key_pool, seed=2)
    client = PlatformClient(http)
    with pytest.raises(ClientRefusal, match="2 tries left") as wrong:
        client.reserve(emulated_reader(state), "0000")
    assert wrong.value.code == "wrong_pin"
    assert state.auth is not None
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    _member, token = platform.staff.add("Hotline desk 1", Role.JLIS_HOTLINE)
    suspension = f"/v1/jlis/certificates/{serial}/suspension"
    assert http.post(suspension, headers={"Authorization": f"Bearer {token}"}).status_code == 204
    with pytest.raises(ClientRefusal, match="suspended") as suspended:
        client.reserve(emulated_reader(state), PIN)
    assert suspended.value.code == "certificate_revoked"


def _serial(state: CardState) -> int:
    assert state.auth is not None
    return int(x509.load_der_x509_certificate(state.auth.certificate).serial_number)


def test_suspension_needs_a_staff_credential(
    platform: ReferencePlatform, http: TestClient, key_pool: KeyPool
) -> None:
    """Issue #12 item 1: nobody without a hotline or window credential revokes a card."""
    serial = _serial(new_card(platform, key_pool, seed=4))
    path = f"/v1/jlis/certificates/{serial}/suspension"
    _helpdesk, helpdesk_token = platform.staff.add("Help desk 1", Role.HELPDESK)
    for headers in (
        {},
        {"Authorization": "Bearer mst_" + "A" * 43},
        {"Authorization": "Basic bXluYTpob2w="},
        {"Authorization": f"Bearer {helpdesk_token}"},
    ):
        refused = http.post(path, headers=headers)
        assert refused.status_code in (401, 403), headers
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert http.post(path).headers["www-authenticate"].startswith("Bearer")
    assert http.post(path).json()["code"] == "staff_unauthenticated"
    forbidden = http.post(path, headers={"Authorization": f"Bearer {helpdesk_token}"})
    assert forbidden.json()["code"] == "staff_forbidden"
    assert http.get(f"/v1/jlis/certificates/{serial}").json()["status"] == "good"

    window, token = platform.staff.add("Window, Sapporo", Role.MUNICIPAL_WINDOW)
    assert http.post(path, headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert http.get(f"/v1/jlis/certificates/{serial}").json()["status"] == "revoked"
    last = list(platform.store.audit_records())[-1]
    assert (last.action, last.outcome) == ("jlis_suspension", "ok")
    assert last.details == {"serial": str(serial), "staff": window.audit_details()}
    unknown = http.post(
        f"/v1/jlis/certificates/{serial + 1}/suspension",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unknown.json()["code"] == "not_found"
    last = list(platform.store.audit_records())[-1]
    assert (last.outcome, last.details["staff"]) == ("refused:not_found", window.audit_details())


def test_jlis_endpoints(platform: ReferencePlatform, http: TestClient, key_pool: KeyPool) -> None:
    state = new_card(platform, key_pool, seed=3)
    assert state.auth is not None
    ca = http.get("/v1/jlis/ca/auth")
    assert ca.content == platform.jlis.auth_ca_certificate
    crl = x509.load_der_x509_crl(http.get("/v1/jlis/crl/auth").content)
    assert len(crl) == 0
    request = ocsp_request_for(state.auth.certificate, ca.content)
    answer = http.post(
        "/v1/jlis/ocsp", content=request, headers={"content-type": "application/ocsp-request"}
    )
    assert (
        ocsp.load_der_ocsp_response(answer.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    )
    serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    assert http.get(f"/v1/jlis/certificates/{serial}").json()["status"] == "good"
    assert http.get("/v1/jlis/certificates/12x").json()["code"] == "invalid_request"


def test_openapi_document_is_checked_in_and_current(http: TestClient) -> None:
    """docs/openapi.json is what the server serves (regenerate: python -m
    mynahil.reference_impl.openapi)."""
    served = http.get("/openapi.json").json()
    assert json.loads(OPENAPI.read_text()) == served, "regenerate docs/openapi.json"
    assert all(path.startswith("/v1/") for path in served["paths"])


def test_openapi_declares_the_operator_signature_on_every_operator_route(
    http: TestClient,
) -> None:
    """A vendor generating a client from the document learns that operator routes are signed
    and where the contract is (docs/operator-signing.md), and holder routes are not."""
    served = http.get("/openapi.json").json()
    scheme = served["components"]["securitySchemes"]["MynahilOperatorSignature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        "apiKey",
        "header",
        "X-Mynahil-Signature",
    )
    assert "docs/operator-signing.md" in scheme["description"]
    operations = [(path, op) for path, ops in served["paths"].items() for op in ops.values()]
    operator_ops = [op for path, op in operations if path.startswith("/v1/operators/{")]
    assert len(operator_ops) >= 4
    for op in operator_ops:
        assert op.get("security") == [{"MynahilOperatorSignature": []}], op["operationId"]
    for path, op in operations:
        if not path.startswith("/v1/operators/{"):
            assert "MynahilOperatorSignature" not in json.dumps(op.get("security", [])), path


def test_base64_is_checked(http: TestClient) -> None:
    challenge = http.post("/v1/mykey/challenges", json={"purpose": "issue"}).json()
    reply = http.post(
        "/v1/mykey/ids",
        json={
            "challenge_id": challenge["challenge_id"],
            "certificate": "!!",
            "signature": base64.b64encode(b"x").decode(),
        },
    )
    assert reply.status_code == 422
    assert "certificate is not base64" in reply.json()["detail"]


def test_jlis_tells_a_relying_party_the_holder_facts_over_http(
    platform: ReferencePlatform, http: TestClient, key_pool: KeyPool
) -> None:
    """The person reference and the card-application date, in-process and over HTTP alike."""
    import random
    from datetime import date

    from mynahil.reference_impl.jlis.remote import RemoteJlis
    from mynahil.reference_impl.mykey import CertificateAuthority, CertificateStatus, HolderFacts
    from mynahil.reference_impl.platform import serving

    state = lifecycle.issue(
        platform.jlis.ca, platform.jlis.registry, random_holder(random.Random(4)),
        pin=PIN, password=PASSWORD, issued_on=date(2021, 5, 20),
        applied_on=date(2021, 4, 20), keys=key_pool,
    )  # fmt: skip
    renewed = lifecycle.renew(
        platform.jlis.ca, platform.jlis.registry, state, on=date(2021, 6, 1), keys=key_pool
    )
    assert state.auth is not None
    assert renewed.auth is not None
    old = x509.load_der_x509_certificate(state.auth.certificate).serial_number
    new = x509.load_der_x509_certificate(renewed.auth.certificate).serial_number
    facts = platform.jlis.holder_facts(new)
    assert facts is not None
    assert facts.card_applied_on == date(2021, 4, 20)
    body = http.get(f"/v1/jlis/certificates/{new}").json()
    assert (body["person_ref"], body["card_applied_on"]) == (facts.person_ref, "2021-04-20")
    assert http.get("/v1/jlis/certificates/404").json()["person_ref"] is None
    with serving(platform.app) as url:
        remote = RemoteJlis.connect(url)
        try:
            authority: CertificateAuthority = remote
            assert authority.auth_ca_certificate == platform.jlis.auth_ca_certificate
            assert authority.holder_facts(new) == HolderFacts(facts.person_ref, date(2021, 4, 20))
            assert authority.holder_facts(old) == authority.holder_facts(new)
            assert authority.holder_facts(404) is None
            assert authority.predecessor(new) == old
            assert authority.status(old) is CertificateStatus.REVOKED
            assert authority.status(404) is CertificateStatus.UNKNOWN
            # What replaced a certificate, with the new one's validity: the same in-process.
            replacement = authority.replacement(old)
            assert replacement is not None
            assert replacement == platform.jlis.replacement(old)
            renewed_cert = x509.load_der_x509_certificate(renewed.auth.certificate)
            assert (replacement.serial, replacement.not_before, replacement.not_after) == (
                new, renewed_cert.not_valid_before_utc, renewed_cert.not_valid_after_utc,
            )  # fmt: skip
            assert authority.replacement(new) is None
            assert authority.replacement(404) is None
        finally:
            remote.close()


def test_the_client_tells_the_platforms_business_time(store_url: str, tmp_path: Path) -> None:
    """`serve --as-of` replays a campaign: a client reads the platform's clock, not its own."""
    from datetime import UTC, datetime, timedelta

    as_of = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
    replaying = build_platform(store_url, tmp_path / "jlis", as_of=as_of)
    try:
        with TestClient(replaying.app) as http:
            told = PlatformClient(http).business_time()
    finally:
        replaying.close()
    assert as_of <= told < as_of + timedelta(minutes=5)
