"""schemathesis against the checked-in OpenAPI document (``docs/openapi.json``).

Every operation gets generated requests, valid and invalid, sent in-process to the real
platform app (round 1 replayed), once on a SQLite file and once on a fresh PostgreSQL schema
(issue #12: PostgreSQL refuses inputs SQLite takes, a NUL in text for one). Whatever arrives,
the platform answers without a server error; every success matches the document's schema
and content type; every error is an RFC 9457 problem (``application/problem+json`` with
``status`` and a stable ``code``), as README "The reference MyKey platform" promises.

The document declares those problem answers for every operation, and a test holds it to that.

Two passes: an anonymous client (operator endpoints answer 401, holder endpoints without
card proofs 4xx), and a registered operator whose requests are signed the way
:class:`~mynahil.reference_impl.operator.OperatorClient` signs them, so report batches, feeds,
settlements and reconciliations with generated bodies reach the point rules themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from schemathesis import Case as GenericCase
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from mynahil.reference_impl.gateways import LocalAccountCheck
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from mynahil.reference_impl.points import Operator, PaymentService
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from tests.conftest import postgres_schema
from tests.security.conftest import REPORTS
from tests.support import examples

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2020, 9, 10, 3, tzinfo=UTC)
OPERATOR, SERVICE = "fuzz-op", "fuzz-pay"
EXAMPLES = int(os.environ.get("MYNAHIL_OPENAPI_EXAMPLES", examples(60)))
# Reproducible in CI (the same cases every run); MYNAHIL_OPENAPI_RANDOM=1 explores afresh.
DERANDOMIZE = os.environ.get("MYNAHIL_OPENAPI_RANDOM", "") not in ("1", "true", "yes")
PROBLEM_TYPE = "application/problem+json"

Case = GenericCase[Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")


@dataclass
class Tally:
    cases: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, status: int) -> None:
        self.cases[kind] = self.cases.get(kind, 0) + 1
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    counted = Tally()
    yield counted
    REPORTS.mkdir(exist_ok=True)
    figures = {"cases": sum(counted.cases.values()), "per_pass": counted.cases,
               "statuses": dict(sorted(counted.statuses.items()))}  # fmt: skip
    (REPORTS / "fuzz-openapi.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nschemathesis cases against the platform: {figures['cases']:,}")


@pytest.fixture(scope="module")
def operator_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per store for the whole module (the fuzz cases share a platform)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('openapi-fuzz') / 'platform.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture(scope="module")
def platform(db_url: str, operator_key: Ed25519PrivateKey) -> Iterator[ReferencePlatform]:
    built = build_platform(db_url, None, accounts=LocalAccountCheck({}), as_of=AS_OF)
    built.points.register_operator(
        Operator(OPERATOR, "Fuzz Pay", public_key_bytes(operator_key)),
        [PaymentService(SERVICE, OPERATOR, "Fuzz Pay")],
    )
    yield built
    problems = built.points.violations()
    count, broken = built.store.verify_audit()
    built.close()
    assert problems == [], problems
    assert broken is None, f"audit chain broken after {count} records: {broken}"


def signing(app: Asgi, signer: Signer) -> Asgi:
    """What an operator's client does to each request: sign method, target, time, nonce and
    the body's digest. A client-side step around the unchanged app, like a signing proxy."""

    async def signed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/operators/"):
            await app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        headers = signer.headers(scope["method"], target, body)
        scope = dict(scope)
        scope["headers"] = [
            *scope["headers"],
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ]
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, {"type": "http.disconnect"})

        await app(scope, replay, send)

    return signed


def success_conforms(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 2xx answer has the documented content type and matches the documented schema."""
    if response.status_code >= 400:
        return None
    content_type_conformance(ctx, response, case)
    return response_schema_conformance(ctx, response, case)


def error_is_a_problem(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 4xx answer is an RFC 9457 problem with a stable code (README, "The reference MyKey
    platform")."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media_type == PROBLEM_TYPE, f"error as {media_type!r}, not {PROBLEM_TYPE}"
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert str(body.get("type", "")).endswith("/" + body["code"]), body
    assert isinstance(body.get("detail"), str), body
    return True


CHECKS: list[CheckFunction] = [not_a_server_error, success_conforms, error_is_a_problem]


def _settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=DERANDOMIZE,
    )


@schema.parametrize()
@_settings()
def test_anonymous_requests_get_no_5xx_and_match_the_schema(
    case: Case, platform: ReferencePlatform, tally: Tally
) -> None:
    response = case.call_and_validate(app=platform.app, checks=CHECKS)
    tally.add(f"anonymous-{platform.store.engine.dialect.name}", response.status_code)


@schema.include(path_regex="^/v1/operators/").parametrize()
@_settings()
def test_signed_operator_requests_get_no_5xx_and_match_the_schema(
    case: Case,
    platform: ReferencePlatform,
    operator_key: Ed25519PrivateKey,
    tally: Tally,
) -> None:
    if "operator_id" in case.path_parameters and case.path_parameters["operator_id"] != "x":
        # Mostly our own operator (its key signs), sometimes another ID (cross-operator).
        case.path_parameters["operator_id"] = OPERATOR
    app = signing(platform.app, Signer(OPERATOR, operator_key))
    response = case.call_and_validate(app=app, checks=CHECKS)
    tally.add(f"signed-operator-{platform.store.engine.dialect.name}", response.status_code)


def test_the_document_describes_the_platforms_error_answers() -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation.get("responses", {}).items() if s >= "400"}
            for status, answer in errors.items():
                assert PROBLEM_TYPE in answer.get("content", {}), f"{method} {path} {status}"
            if path.startswith("/v1/operators/"):
                assert "401" in errors, f"{method.upper()} {path}: the refusal of an unsigned call"


def test_a_feed_cursor_past_64_bits_is_refused_not_a_server_error(
    platform: ReferencePlatform, operator_key: Ed25519PrivateKey
) -> None:
    from fastapi.testclient import TestClient

    app = signing(platform.app, Signer(OPERATOR, operator_key))
    with TestClient(app) as client:
        response = client.get(f"/v1/operators/{OPERATOR}/applications?after={2**63}")
    assert response.status_code == 422, response.text
