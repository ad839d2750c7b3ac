"""The fast routes (api/fast.py) answer exactly as the FastAPI routes they stand before: the
same platform's app built without them (``new_app(fast_routes=False)``) is the reference, for
valid requests and for anything else."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from mynahil.card_emulator import CardState
from mynahil.reference_impl.api.fast import FastPost, FastRoute
from mynahil.reference_impl.jlis import KeyPool
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from tests.reference_impl.api.test_http import new_card
from tests.support import examples

ISSUE, CHALLENGES, LOGIN = "/v1/mykey/ids", "/v1/mykey/challenges", "/v1/mykey/sessions/card"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "jlis")
    yield built
    built.close()


@pytest.fixture
def clients(platform: ReferencePlatform) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(platform.app) as fast, TestClient(platform.new_app(fast_routes=False)) as slow:
        yield fast, slow


def fast_post(app: FastAPI, path: str) -> FastPost[Any]:
    route = next(r for r in app.router.routes if isinstance(r, FastRoute) and r.path == path)
    assert isinstance(route, Route)
    endpoint = route.endpoint
    assert isinstance(endpoint, FastPost)
    return endpoint


def issuance(
    http: TestClient, card: CardState, purpose: str = "issue", path: str = ISSUE
) -> httpx.Response:
    assert card.auth is not None
    challenge = http.post(CHALLENGES, json={"purpose": purpose})
    assert challenge.status_code == 201, challenge.text
    nonce = base64.b64decode(challenge.json()["nonce"])
    signature = card.auth.private_key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
    answer: httpx.Response = http.post(
        path,
        json={
            "challenge_id": challenge.json()["challenge_id"],
            "certificate": base64.b64encode(card.auth.certificate).decode(),
            "signature": base64.b64encode(signature).decode(),
        },
    )
    return answer


def test_valid_requests_take_the_fast_route_and_are_answered_alike(
    platform: ReferencePlatform, clients: tuple[TestClient, TestClient], key_pool: KeyPool
) -> None:
    fast, slow = clients
    served: list[str] = []
    for path in (ISSUE, CHALLENGES, LOGIN):
        route = fast_post(platform.app, path)
        serve = route.serve

        async def counted(request: Any, body: Any, serve: Any = serve, path: str = path) -> Any:
            served.append(path)
            return await serve(request, body)

        route.serve = counted
    first, second = (new_card(platform, key_pool, seed) for seed in (1, 2))
    new_fast, new_slow = issuance(fast, first), issuance(slow, second)
    assert served == [CHALLENGES, ISSUE]  # the slow app's routes are FastAPI's alone
    again_slow, again_fast = issuance(slow, first), issuance(fast, second)
    for new, again in ((new_fast, again_slow), (new_slow, again_fast)):
        assert (new.status_code, again.status_code) == (201, 200)
        assert new.headers["content-type"] == again.headers["content-type"]
        assert new.json() == {"mykey_id": new.json()["mykey_id"], "created": True}
        assert again.json() == {"mykey_id": new.json()["mykey_id"], "created": False}
    # The same bytes for the same answer: a re-issuance answered by each app.
    assert issuance(fast, first).content == issuance(slow, first).content
    served.clear()
    logins = [issuance(c, first, "login", LOGIN) for c in (fast, slow)]
    assert served == [CHALLENGES, LOGIN]
    assert [r.status_code for r in logins] == [201, 201]
    assert logins[0].json().keys() == logins[1].json().keys()
    assert (
        logins[0].json()["mykey_id"] == logins[1].json()["mykey_id"] == new_fast.json()["mykey_id"]
    )


_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["issue", "login", "AA==", "not base64!", "a\x00b"]),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
_BODIES = st.one_of(
    st.dictionaries(
        st.sampled_from(["challenge_id", "certificate", "signature", "chosen_id", "purpose", "x"]),
        _VALUES,
        max_size=5,
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"purpose": "issue"} trailing']),
)
_CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", None]
)


def test_anything_else_is_answered_as_the_fastapi_route_answers_it(
    clients: tuple[TestClient, TestClient],
) -> None:
    fast, slow = clients

    @settings(
        max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        path=st.sampled_from([ISSUE, CHALLENGES, LOGIN]), body=_BODIES, content_type=_CONTENT_TYPES
    )
    def check(path: str, body: bytes, content_type: str | None) -> None:
        headers = {"content-type": content_type} if content_type else {}
        answers = [c.post(path, content=body, headers=headers) for c in (fast, slow)]
        (a, b) = answers
        assert a.status_code == b.status_code, (a.text, b.text)
        assert a.headers["content-type"] == b.headers["content-type"]
        if a.status_code == 201:  # a challenge was made by each: its own ID and nonce
            assert a.json().keys() == b.json().keys()
        else:
            assert a.json() == b.json()

    check()
