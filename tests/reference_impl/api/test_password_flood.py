"""50 wrong passwords at once against a real server on loopback, on each store (issue #12
item 2): all refused alike, none a 5xx, at most the allowed number checked before the lock,
the holder's card still gets in, and the flood costs the audit log a bounded amount."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from mynahil.card_emulator import emulated_reader
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serving
from tests.support import PASSWORD, PIN, TIMING_SENSITIVE

GUESSERS = 50

pytestmark = TIMING_SENSITIVE


@pytest.fixture
def platform(store_url: str, tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(store_url, tmp_path / "jlis")
    yield built
    built.close()


def test_fifty_parallel_guesses_over_http(platform: ReferencePlatform, key_pool: KeyPool) -> None:
    state = lifecycle.issue(
        platform.jlis.ca, platform.jlis.registry, random_holder(random.Random(8)),
        pin=PIN, password=PASSWORD, issued_on=date.today(), keys=key_pool,
    )  # fmt: skip
    with serving(platform.app) as url, httpx.Client(base_url=url, timeout=120) as http:
        client = PlatformClient(http)
        mykey_id = client.reserve(emulated_reader(state), PIN)
        auth = {"Authorization": f"Bearer {client.login(emulated_reader(state), '1234')}"}
        reset = http.put("/v1/mykey/me/password", json={"password": "secret123"}, headers=auth)
        assert reset.status_code == 204
        start = threading.Barrier(GUESSERS)
        answers: list[tuple[int, str]] = []

        def guess() -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                start.wait()
                answer = own.post(
                    "/v1/mykey/sessions/password",
                    json={"mykey_id": mykey_id, "password": "wrong-guess1"},
                )
                answers.append((answer.status_code, answer.text))

        threads = [threading.Thread(target=guess) for _ in range(GUESSERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(answers) == GUESSERS
        assert {status for status, _ in answers} == {401}
        assert len({text for _, text in answers}) == 1  # a locked ID answers like a wrong one
        locked = http.post(
            "/v1/mykey/sessions/password", json={"mykey_id": mykey_id, "password": "secret123"}
        )
        assert (locked.status_code, locked.text) == answers[0]
        unknown = http.post(
            "/v1/mykey/sessions/password", json={"mykey_id": "ZZZZ-ZZZZ", "password": "x1yz5678"}
        )
        assert (unknown.status_code, unknown.text) == answers[0]
        assert client.login(emulated_reader(state), PIN)  # the card still gets in
    with platform.store.transaction() as uow:
        record = uow.record_by_mykey_id(mykey_id)
    assert record is not None
    # the 5 guesses before the lock were checked and counted, nothing after it
    assert record.password_failures == platform.mykey.policy.password_failures_before_lock
    assert record.locked_until is not None
    # and the anonymous flood wrote a bounded number of audit records (issue #12 item 6)
    refusals = [
        r
        for r in platform.store.audit_records()
        if r.action == "login_password" and r.outcome == "refused:login_failed"
    ]
    assert len(refusals) <= platform.mykey.anonymous_refusals.per_window
    assert all(r.details["source"] == {"text": "127.0.0.1"} for r in refusals)
