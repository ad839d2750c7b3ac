"""The sample operator's signed client (``reference_impl/operator/client.py``): a lost answer is
sent again under the same key and granted once, an unreachable platform is named after the
retries, and a charge the platform never answers waits as pending and is sent again in the
background until it is decided. Against the platform served on loopback."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.card_emulator import emulated_reader
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.operator import OperatorClient
from mynahil.reference_impl.platform import build_platform, free_port, serving, shifted_clock
from mynahil.reference_impl.points import Outcome, PointsError
from mynahil.reference_impl.points.signing import Signer
from mynahil.reference_impl.sandbox import sample_operator
from tests.support import PASSWORD, PIN

AS_OF = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)


def test_a_lost_answer_is_retried_under_the_same_key_and_granted_once(
    store_url: str, tmp_path: Path
) -> None:
    """The platform decides and commits, the answer is lost (503): the client sends the same
    batch again, signed afresh, and is answered from the store."""
    from mynahil.conformance.operator_harness import LosingAnswers

    platform = build_platform(store_url, tmp_path / "jlis", as_of=AS_OF)
    answers = LosingAnswers(platform.app)
    try:
        with (
            serving(answers) as url,
            sample_operator(
                platform, url, operator_id="lossy-inc", operator_name="Lossy Inc.",
                service_id="lossy", service_name="Lossy", resend_every_s=None,
            ) as operator,
        ):  # fmt: skip
            books, client = operator.books, operator.client
            report = books.book(books.open_account("Nobody").account_id, 1000, AS_OF)
            answers.armed = 1
            client.backoff_s = 0.01
            (decision,) = client.report([report])
    finally:
        platform.close()
    assert answers.lost == 1
    assert decision.replayed  # the second send was answered from the store
    assert decision.outcome is Outcome.NO_APPLICATION


def test_an_unreachable_platform_is_named_after_the_retries() -> None:
    client = OperatorClient.connect(
        f"http://127.0.0.1:{free_port()}", Signer("x", Ed25519PrivateKey.generate())
    )
    client.retries, client.backoff_s = 2, 0.01
    with pytest.raises(PointsError) as caught:
        client.feed()
    assert caught.value.code == "platform_unreachable"


def test_a_charge_the_platform_never_answers_is_sent_again_until_it_is(
    store_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    """Every try's answer is lost: the till answers 202 pending, and the sample operator
    sends the report again in the background until it is decided, then credits it once."""
    from mynahil.conformance.operator_harness import LosingAnswers

    platform = build_platform(store_url, tmp_path / "jlis", as_of=AS_OF)
    answers = LosingAnswers(platform.app)
    try:
        with serving(answers) as url:
            operator = sample_operator(
                platform, url, operator_id="qr-pay-inc", operator_name="QR Pay Inc.",
                service_id="qr-pay", service_name="QR Pay",
                clock=shifted_clock(AS_OF + timedelta(minutes=1)), resend_every_s=0.1,
            )  # fmt: skip
            with operator as sample:
                books, client, operator_url = sample.books, sample.client, sample.url
                client.retries, client.backoff_s = 1, 0.01
                holder = PlatformClient.connect(url)
                card = emulated_reader(
                    lifecycle.issue(
                        platform.jlis.ca, platform.jlis.registry,
                        random_holder(random.Random(3)), pin=PIN, password=PASSWORD,
                        issued_on=date(2020, 7, 1), keys=key_pool,
                    )
                )  # fmt: skip
                holder.reserve(card, PIN)
                account = books.open_account("Hanako")
                holder.apply(card, PIN, "qr-pay", account.account_id, account.security_code)
                answers.armed = 1_000  # every answer lost, however often it is sent
                till = httpx.post(
                    f"{operator_url}/v1/till",
                    json={"account_id": account.account_id, "amount": 4000},
                )
                assert till.status_code == 202
                assert till.json()["outcome"] == "pending"
                assert books.pending()
                answers.armed = 0  # the platform answers again
                deadline = time.monotonic() + 10
                while books.pending() and time.monotonic() < deadline:
                    time.sleep(0.05)
        assert not books.pending()
        assert books.balance(account.account_id) == 1000
        assert platform.points.violations() == []
    finally:
        platform.close()
