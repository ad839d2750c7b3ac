"""The operator harness itself: the stage it sets, and what it says when a service falls short."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date

import pytest
from starlette.types import Receive, Scope, Send

from mynahil.conformance.operator_harness import (
    CAMPAIGN_ID,
    HarnessError,
    OperatorHarness,
    conformance_scheme,
    operator_harness,
)
from mynahil.reference_impl.points.campaign import load_scheme


@pytest.fixture(scope="module")
def harness() -> Iterator[OperatorHarness]:
    with operator_harness() as running:
        yield running


def test_the_conformance_campaign_is_round_one_open_today() -> None:
    today = date(2026, 11, 23)
    campaign = conformance_scheme(today).campaign(CAMPAIGN_ID)
    round1 = load_scheme().campaign("round1")
    assert campaign is not None
    assert round1 is not None
    assert (campaign.spend.rate_percent, campaign.spend.cap_yen) == (25, 5000)
    assert campaign.spend.cap_group == round1.spend.cap_group
    assert campaign.accepts_applications_on(today)
    assert campaign.spend.starts < today < campaign.spend.window_end(today)


def test_the_holder_applied_through_the_operators_verify_endpoint(
    harness: OperatorHarness,
) -> None:
    with harness.platform.store.transaction() as uow:
        feed = uow.applications_feed(harness.operator.operator_id, 0, 10)
    assert [(a.account_id, a.campaign_id) for a in feed] == [(harness.account_id, CAMPAIGN_ID)]


def test_a_transaction_never_reported_is_named_after_the_wait(harness: OperatorHarness) -> None:
    patient = harness.operator
    harness.operator = replace(patient, wait_s=0.3)
    start = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="never reported transaction no-such-tx"):
            harness.decision("no-such-tx")
    finally:
        harness.operator = patient
    assert time.monotonic() - start >= 0.3


def test_a_failing_hook_says_which_call_and_what_came_back(harness: OperatorHarness) -> None:
    with pytest.raises(HarnessError, match=r"POST .*/v1/till answered 404"):
        harness.till(100, account_id="no-such-account")


def test_a_refused_report_keeps_its_answer_and_the_next_one_is_lost(
    harness: OperatorHarness,
) -> None:
    """Only a decided batch loses its answer: a refusal (unsigned, here) reaches the caller."""
    import httpx

    lost = harness.answers.lost
    harness.lose_next_answer()
    try:
        url = f"{harness.platform_url}/v1/operators/{harness.operator.operator_id}/transactions"
        refused = httpx.post(url, json={"transactions": []})
        assert refused.status_code == 401
        assert (harness.answers.lost, harness.answers.armed) == (lost, 1)
    finally:
        harness.answers.armed = 0


def test_an_answer_lost_after_its_decision_is_visible_is_still_counted(
    harness: OperatorHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OP-REPORT-002 counts the lost answers once the decision is in the database; the answer
    is only counted lost once the platform has finished it. Here the platform finishes half a
    second after its decision is visible (a busy machine stretches that gap): the count then
    reads as before, and ``answers_lost()`` waits for one more."""
    inner = harness.answers.app

    async def finishing_late(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, receive, send)
        if scope["type"] == "http" and str(scope["path"]).endswith("/transactions"):
            await asyncio.sleep(0.5)

    monkeypatch.setattr(harness.answers, "app", finishing_late)

    def decided() -> int:
        with harness.platform.store.transaction() as uow:
            return len(uow.all_transactions())

    before, lost = decided(), harness.answers.lost
    harness.lose_next_answer()
    with ThreadPoolExecutor(1) as pool:
        till = pool.submit(harness.till, 400)
        deadline = time.monotonic() + 10
        while decided() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert decided() == before + 1
        assert harness.answers.lost == lost  # decided and visible, not yet counted
        assert harness.answers_lost(lost) == lost + 1
        till.result()
