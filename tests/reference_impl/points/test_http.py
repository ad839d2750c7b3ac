"""The point system over real sockets: the platform and the sample operator each on loopback.

The holder applies through the cardholder client (the platform asks the operator over HTTP,
signed), the operator reports through its signed client, pulls the feed, settles and
reconciles; forged, unsigned, stale and replayed operator requests are refused.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from mynahil.card import MyNumberCard
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.gateways import HttpRegistries
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.operator import OperatorBooks, OperatorClient
from mynahil.reference_impl.operator.client import report_json
from mynahil.reference_impl.platform import (
    ReferencePlatform,
    build_platform,
    free_port,
    serving,
)
from mynahil.reference_impl.points import (
    Operator,
    Outcome,
    PaymentService,
    PointsError,
    Registrations,
    report_digest,
)
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.reference_impl.sandbox import sample_operator
from tests.support import PASSWORD, PIN

AS_OF = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)


@dataclass
class World:
    platform: ReferencePlatform
    url: str
    books: OperatorBooks
    operator: OperatorClient
    key_pool: KeyPool

    def card(
        self, seed: int, issued_on: date = date(2020, 7, 1), applied_on: date | None = None
    ) -> MyNumberCard:
        return self.reader(self.card_state(seed, issued_on, applied_on))

    def card_state(
        self, seed: int, issued_on: date = date(2020, 7, 1), applied_on: date | None = None
    ) -> CardState:
        return lifecycle.issue(
            self.platform.jlis.ca, self.platform.jlis.registry,
            random_holder(random.Random(seed)), pin=PIN, password=PASSWORD,
            issued_on=issued_on, applied_on=applied_on, keys=self.key_pool,
        )  # fmt: skip

    def reader(self, state: CardState) -> MyNumberCard:
        return emulated_reader(state)


@pytest.fixture
def world(store_url: str, tmp_path: Path, key_pool: KeyPool) -> Iterator[World]:
    with running_world(store_url, tmp_path, key_pool, AS_OF) as built:
        yield built


@contextmanager
def running_world(
    store_url: str,
    tmp_path: Path,
    key_pool: KeyPool,
    as_of: datetime,
    *,
    registrations: Registrations | None = None,
    port: int = 0,
) -> Iterator[World]:
    """The platform (its business clock at ``as_of``) and the sample operator, on loopback."""
    platform = build_platform(
        store_url, tmp_path / "jlis", as_of=as_of, registrations=registrations
    )
    with (
        serving(platform.app, port=port) as url,
        sample_operator(
            platform, url, operator_id="qr-pay-inc", operator_name="QR Pay Inc.",
            service_id="qr-pay", service_name="QR Pay",
        ) as operator,
    ):  # fmt: skip
        yield World(platform, url, operator.books, operator.client, key_pool)
    platform.close()


def test_reserve_apply_charge_settle_over_http(world: World) -> None:
    holder = PlatformClient.connect(world.url)
    card = world.card(1)
    holder.reserve(card, PIN)
    account = world.books.open_account("Hanako")
    application = holder.apply(card, PIN, "qr-pay", account.account_id, account.security_code)
    assert application["campaign_id"] == "round1"

    feed = world.operator.feed(after=0)
    assert [a["account_id"] for a in feed] == [account.account_id]
    later = AS_OF + timedelta(minutes=2)  # after the application, not ahead of the clock
    reports = [world.books.book(account.account_id, 12_000, later) for _ in range(2)]
    decisions = world.operator.report(reports)
    world.books.answered(decisions)
    assert [(d.outcome, d.points) for d in decisions] == [
        (Outcome.GRANTED, 3000), (Outcome.CAPPED, 2000),
    ]  # fmt: skip
    again = world.operator.report(reports)
    assert all(d.replayed for d in again)
    settlement = world.operator.settlement("2020-09")
    assert settlement["net"] == 5000
    assert world.operator.settlement("2020-09", "csv").count("\n") == 3
    records = "transaction_id,kind,amount,points\n" + "".join(
        f"{r.transaction_id},{r.kind},{r.amount},{r.points}\n"
        for r in world.books.records("2020-09")
    )
    assert world.operator.reconcile("2020-09", records) == []
    assert world.platform.points.violations() == []


def test_the_holder_is_told_what_to_do_when_refused(world: World) -> None:
    holder = PlatformClient.connect(world.url)
    card = world.card(2)
    holder.reserve(card, PIN)
    account = world.books.open_account("Taro")
    with pytest.raises(ClientRefusal) as refused:
        holder.apply(card, PIN, "qr-pay", account.account_id, "not-the-code")
    assert refused.value.code == "account_not_verified"
    assert "security code" in str(refused.value)


def _signed_post(world: World, signer: Signer, body: bytes, **overrides: str) -> httpx.Response:
    target = f"/v1/operators/{signer.name}/transactions"
    headers = signer.headers("POST", target, body)
    headers.update(overrides)
    headers["Content-Type"] = "application/json"
    return httpx.post(world.url + target, content=body, headers=headers)


def _batch(account: str) -> bytes:
    report = OperatorBooks("qr-pay-inc", "qr-pay").book(account, 100, AS_OF)
    return json.dumps({"transactions": [report_json(report)]}).encode()


def test_unsigned_forged_stale_and_replayed_operator_requests_are_refused(world: World) -> None:
    body = _batch("000000000000")
    target = "/v1/operators/qr-pay-inc/transactions"
    unsigned = httpx.post(world.url + target, content=body)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "request_unsigned")

    impostor = Signer("qr-pay-inc", Ed25519PrivateKey.generate())
    forged = _signed_post(world, impostor, body)
    assert (forged.status_code, forged.json()["code"]) == (401, "request_signature_invalid")

    real = world.operator.signer
    tampered_headers = real.headers("POST", target, body)
    tampered = httpx.post(
        world.url + target, content=body.replace(b"100", b"900"), headers=tampered_headers
    )
    assert tampered.json()["code"] == "request_signature_invalid"

    old = real.headers("POST", target, body, now=datetime.now(UTC) - timedelta(minutes=10))
    stale = httpx.post(world.url + target, content=body, headers=old)
    assert stale.json()["code"] == "request_stale"

    fresh = real.headers("POST", target, body)
    fresh["Content-Type"] = "application/json"
    first = httpx.post(world.url + target, content=body, headers=fresh)
    assert first.status_code == 200
    replay = httpx.post(world.url + target, content=body, headers=fresh)
    assert (replay.status_code, replay.json()["code"]) == (401, "request_replayed")

    stranger = Signer("nobody", Ed25519PrivateKey.generate())
    unknown = _signed_post(world, stranger, body)
    assert unknown.json()["code"] == "operator_unknown"


def test_an_operator_cannot_act_for_another(world: World) -> None:
    other_key = Ed25519PrivateKey.generate()
    world.platform.points.register_operator(
        Operator("other", "Other", public_key_bytes(other_key)),
        [PaymentService("other-pay", "other", "Other Pay")],
    )
    other = Signer("other", other_key)
    body = _batch("000000000000")
    target = "/v1/operators/qr-pay-inc/transactions"
    headers = other.headers("POST", target, body)
    response = httpx.post(world.url + target, content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, "operator_mismatch")


def test_a_signed_batch_is_one_transaction_with_one_audit_record(world: World) -> None:
    """Issue 16: the signature's nonce, the decisions and one audit record commit together;
    the record holds what the request's and the batch's two records held before."""
    report = OperatorBooks("qr-pay-inc", "qr-pay").book("000000000000", 100, AS_OF)
    body = json.dumps({"transactions": [report_json(report)]}).encode()
    store = world.platform.store
    before = len(list(store.audit_records()))
    commits: list[object] = []

    def commit(connection: object) -> None:
        commits.append(connection)

    event.listen(store.engine, "commit", commit)
    try:
        response = _signed_post(world, world.operator.signer, body)
    finally:
        event.remove(store.engine, "commit", commit)
    assert response.status_code == 200, response.text
    assert len(commits) == 1
    added = list(store.audit_records())[before:]
    assert [(r.action, r.outcome) for r in added] == [("report", "ok")]
    assert added[0].details == {
        "operator": "qr-pay-inc",
        "target": "/v1/operators/qr-pay-inc/transactions",
        "reports": 1,
        "new": 1,
        "points": 0,
        "digest": hashlib.sha256(report_digest(report).encode()).hexdigest(),
    }


def test_a_batch_signed_for_another_operator_is_audited_as_a_refused_request(
    world: World,
) -> None:
    other_key = Ed25519PrivateKey.generate()
    world.platform.points.register_operator(
        Operator("other", "Other", public_key_bytes(other_key)),
        [PaymentService("other-pay", "other", "Other Pay")],
    )
    body = _batch("000000000000")
    target = "/v1/operators/qr-pay-inc/transactions"
    before = len(list(world.platform.store.audit_records()))
    headers = Signer("other", other_key).headers("POST", target, body)
    response = httpx.post(world.url + target, content=body, headers=headers)
    assert response.status_code == 403
    added = list(world.platform.store.audit_records())[before:]
    assert [(r.action, r.outcome, r.details) for r in added] == [
        (
            "operator_request",
            "refused:operator_mismatch",
            {"operator": "other", "for": "qr-pay-inc", "target": target},
        )
    ]


def test_bad_batches_get_a_problem_naming_the_field(world: World) -> None:
    with pytest.raises(PointsError, match=r"transactions\.0\.amount"):
        world.operator._send(
            "POST", "/v1/operators/qr-pay-inc/transactions",
            json.dumps({"transactions": [{**json.loads(_batch("1"))["transactions"][0],
                                          "amount": -5}]}).encode(),
            "application/json",
        )  # fmt: skip


# --- the card-application date, from J-LIS, over HTTP ----------------------------------------


def test_the_extension_goes_by_the_card_application_date_over_http(
    store_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    """Issue 13's two round-1 holders, on `serve --as-of 2021-06-15`: one who applied for the
    card on 2021-04-20 and received it on 2021-05-20, one with a 2016 card whose certificate
    was renewed in June 2021. Both may apply and earn until 2021-12-31; one who applied for
    the card in May may not."""
    june = datetime(2021, 6, 15, 3, 0, tzinfo=UTC)
    with running_world(store_url, tmp_path, key_pool, june) as world:
        client = PlatformClient.connect(world.url)
        arrived_later = world.card(11, issued_on=date(2021, 5, 20), applied_on=date(2021, 4, 20))
        old = world.card_state(12, issued_on=date(2016, 3, 1), applied_on=date(2016, 1, 15))
        jlis = world.platform.jlis
        renewed_state = lifecycle.renew(
            jlis.ca, jlis.registry, old, on=date(2021, 6, 10), keys=key_pool
        )
        renewed = world.reader(renewed_state)
        too_late = world.card(13, issued_on=date(2021, 5, 20), applied_on=date(2021, 5, 1))
        accounts = []
        for card in (arrived_later, renewed):
            client.reserve(card, PIN)
            account = world.books.open_account("holder")
            applied = client.apply(card, PIN, "qr-pay", account.account_id, account.security_code)
            assert applied["campaign_id"] == "round1"
            accounts.append(account.account_id)
        client.reserve(too_late, PIN)
        account = world.books.open_account("late")
        with pytest.raises(ClientRefusal) as refused:
            client.apply(too_late, PIN, "qr-pay", account.account_id, account.security_code)
        assert refused.value.code == "campaign_closed"
        # Made now (June, after the original 2021-03-31 end: only the extension admits it);
        # a charge dated December would be future_dated on this clock.
        after_applying = june + timedelta(minutes=2)
        decisions = world.operator.report(
            [world.books.book(a, 4000, after_applying) for a in accounts]
        )
        assert [d.outcome for d in decisions] == [Outcome.GRANTED, Outcome.GRANTED]


def test_round2_goes_by_the_card_application_date_over_http(
    store_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    """Applied for by 2023-02-28, received in March: round 2 takes the holder."""
    march = datetime(2023, 3, 25, 3, 0, tzinfo=UTC)
    with running_world(store_url, tmp_path, key_pool, march) as world:
        client = PlatformClient.connect(world.url)
        on_time = world.card(21, issued_on=date(2023, 3, 20), applied_on=date(2023, 2, 28))
        late = world.card(22, issued_on=date(2023, 3, 20), applied_on=date(2023, 3, 1))
        accounts = []
        for card in (on_time, late):
            client.reserve(card, PIN)
            accounts.append(world.books.open_account("holder"))
        first = accounts[0]
        applied = client.apply(
            on_time, PIN, "qr-pay", first.account_id, first.security_code, "round2"
        )
        assert applied["campaign_id"] == "round2"
        with pytest.raises(ClientRefusal) as refused:
            client.apply(
                late, PIN, "qr-pay", accounts[1].account_id, accounts[1].security_code, "round2"
            )
        assert refused.value.code == "not_eligible"


# --- registrations: the registries beside J-LIS, asked when a bonus is claimed ----------------


def test_bonuses_need_a_registration_the_registry_holds_over_http(
    store_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    """The registries answer over their own routes; the platform asks them over a socket."""
    port = free_port()
    july = datetime(2022, 7, 1, 3, 0, tzinfo=UTC)
    asked = HttpRegistries(f"http://127.0.0.1:{port}")
    with running_world(
        store_url, tmp_path, key_pool, july, registrations=asked, port=port
    ) as world:
        client = PlatformClient.connect(world.url)
        state = world.card_state(31, issued_on=date(2022, 6, 1))
        card = world.reader(state)
        client.reserve(card, PIN)
        account = world.books.open_account("holder")
        client.apply(card, PIN, "qr-pay", account.account_id, account.security_code, "round2")
        with pytest.raises(ClientRefusal) as missing:
            client.claim_bonus(card, PIN, "round2", "health_insurance")
        assert missing.value.code == "registration_missing"

        assert state.auth is not None
        serial = str(x509.load_der_x509_certificate(state.auth.certificate).serial_number)
        body = {"certificate_serial": serial, "registered_on": "2021-12-01"}
        url = f"{world.url}/v1/registries/health-insurance/registrations"
        assert httpx.post(url, json=body).json()["code"] == "staff_unauthenticated"
        _member, token = world.platform.staff.add("window clerk", "municipal-window")
        made = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert made.status_code == 201, made.text
        person = made.json()["person_ref"]
        facts = world.platform.jlis.holder_facts(int(serial))
        assert facts is not None
        assert person == facts.person_ref
        shown = httpx.get(f"{world.url}/v1/registries/health-insurance/people/{person}")
        assert shown.json()["registered_on"] == "2021-12-01"
        nobody = httpx.get(f"{world.url}/v1/registries/public-fund/people/{person}")
        assert (nobody.status_code, nobody.json()["code"]) == (404, "registration_not_found")

        granted = client.claim_bonus(card, PIN, "round2", "health_insurance")
        assert (granted["points"], granted["account_id"]) == (7500, account.account_id)
        with pytest.raises(ClientRefusal) as other:
            client.claim_bonus(card, PIN, "round2", "public_fund_account")
        assert other.value.code == "registration_missing"


def test_an_unreachable_registry_refuses_the_bonus_for_now(
    store_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    july = datetime(2022, 7, 1, 3, 0, tzinfo=UTC)
    nowhere = HttpRegistries(f"http://127.0.0.1:{free_port()}", timeout=1)
    with running_world(store_url, tmp_path, key_pool, july, registrations=nowhere) as world:
        client = PlatformClient.connect(world.url)
        card = world.card(32, issued_on=date(2022, 6, 1))
        client.reserve(card, PIN)
        account = world.books.open_account("holder")
        client.apply(card, PIN, "qr-pay", account.account_id, account.security_code, "round2")
        with pytest.raises(ClientRefusal) as refused:
            client.claim_bonus(card, PIN, "round2", "public_fund_account")
        assert refused.value.code == "registry_unavailable"


def test_no_request_holds_two_of_the_store_connections(world: World) -> None:
    """A request that holds one of the store's pooled connections never waits for a second
    from the same pool: once every pooled connection is held by such a request, all of them
    wait on each other until the pool times out (the x10 replay stalled this way with the
    whole pool `idle in transaction`). Checked over a holder's whole path and an operator's
    reports, on both stores."""
    engine = world.platform.store.engine
    held: dict[int, int] = {}
    most = 0
    lock = threading.Lock()

    def begun(*_: object) -> None:
        nonlocal most
        with lock:
            thread = threading.get_ident()
            held[thread] = held.get(thread, 0) + 1
            most = max(most, held[thread])

    def ended(*_: object) -> None:
        with lock:
            thread = threading.get_ident()
            held[thread] = held.get(thread, 0) - 1

    # Each of the store's transactions runs on a connection of its own (kept open between
    # transactions, so the pool's checkouts would not show them): count open transactions.
    for name, listener in (("begin", begun), ("commit", ended), ("rollback", ended)):
        event.listen(engine, name, listener)
    try:
        holder = PlatformClient.connect(world.url)
        card = world.card(7)
        holder.reserve(card, PIN)
        holder.login(card, PIN)
        account = world.books.open_account("Jiro")
        holder.apply(card, PIN, "qr-pay", account.account_id, account.security_code)
        later = AS_OF + timedelta(minutes=2)
        decisions = world.operator.report([world.books.book(account.account_id, 4_000, later)])
        assert [d.outcome for d in decisions] == [Outcome.GRANTED]
    finally:
        for name, listener in (("begin", begun), ("commit", ended), ("rollback", ended)):
            event.remove(engine, name, listener)
    assert most == 1, f"a request held {most} of the store's connections at once"
