"""The harness an operator endpoint is certified in.

The harness plays the platform: a reference platform at real time, running a campaign with
round 1's rules that is open today, so a service stamps its charges with its own clock. The
operator under test is registered there with its public key and verify URL. A holder with an
emulated card reserves a MyKey ID and applies for an account at the service; the platform then
calls the service's verify endpoint, signed, as it would in production.

The operator under test is one of:

- the sample operator, or a deliberately defective one (``operator:sample``,
  ``operator:defect:NAME``), served here on loopback;
- a vendor's service at a URL (``operator:URL``), described by an operator profile
  (:mod:`mynahil.conformance.operator_profile`). It must offer the conformance hooks of
  ``docs/operator-conformance.md``: open a test account, ring up a charge or a refund at the
  till, and show an account's credited points.
"""

from __future__ import annotations

import json
import random
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mynahil.card_emulator import emulated_reader
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.jlis import lifecycle, random_holder
from mynahil.reference_impl.operator import OperatorBooks, OperatorClient, create_operator_app
from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serving
from mynahil.reference_impl.points import Decision, Operator, Outcome, PaymentService, Report
from mynahil.reference_impl.points.campaign import Bonus, Extension, Scheme, load_scheme
from mynahil.reference_impl.points.model import StoredTransaction
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.tls import TlsConfigError, tls_failure

from .operator_defects import OPERATOR_DEFECTS
from .operator_profile import OperatorProfile
from .targets import EMULATED_PASSWORD, EMULATED_PIN

__all__ = [
    "CAMPAIGN_ID",
    "OPERATOR_DEFECTS",
    "HarnessError",
    "LosingAnswers",
    "OperatorHarness",
    "OperatorUnderTest",
    "conformance_scheme",
    "operator_harness",
]

EXTENDED_CAMPAIGN_ID = "conformance-extended"
CAMPAIGN_ID = "conformance"
# A vendor's first charge comes moments after the application; its clock may lag ours.
CLOCK_SKEW_ALLOWANCE_S = 1.0
SAMPLE_OPERATOR_ID, SAMPLE_SERVICE_ID = "operator-under-test", "pay-under-test"


class HarnessError(RuntimeError):
    """The harness could not set the stage; the message says what the vendor should check."""


def conformance_scheme(today: date) -> Scheme:
    """Round 1's rules (rate, cap, cap group) in a campaign open from a month before ``today``
    to a month after, for cards applied for on any day."""
    round1 = load_scheme().campaign("round1")
    assert round1 is not None, "the bundled campaigns have round 1"
    spend = replace(
        round1.spend,
        starts=today - timedelta(days=30),
        ends=today + timedelta(days=30),
        card_applied_by=None,
        extensions=(),
    )
    # Round 1's extension in miniature: the base window ended a week ago; holders who applied
    # for their card by ten days ago may still apply and earn (by J-LIS's card-application
    # date, never the certificate's issue date).
    extended = replace(
        spend,
        starts=today - timedelta(days=30),
        ends=today - timedelta(days=7),
        extensions=(Extension(today + timedelta(days=30), today - timedelta(days=10)),),
    )
    return Scheme.of(
        [
            replace(
                round1,
                campaign_id=CAMPAIGN_ID,
                title="Conformance campaign (round 1's rules, open today)",
                opens=today - timedelta(days=60),
                closes=today + timedelta(days=60),
                spend=spend,
                bonuses=(),
            ),
            replace(
                round1,
                campaign_id=EXTENDED_CAMPAIGN_ID,
                title="Conformance campaign with an extension (card applied for by 10 days ago)",
                opens=today - timedelta(days=60),
                closes=today + timedelta(days=60),
                spend=extended,
                bonuses=(
                    Bonus(
                        "health_insurance",
                        7500,
                        today - timedelta(days=60),
                        today + timedelta(days=60),
                    ),
                ),
            ),
        ]
    )


class LosingAnswers:
    """Between the harness's platform and the operator: while armed, a report batch is decided
    and committed as usual, but its answer is lost on the way back (503), as when a connection
    drops. The operator must send the same reports again."""

    PROBLEM = json.dumps({
        "type": "about:blank", "title": "Service Unavailable", "status": 503,
        "code": "answer_lost",
        "detail": "decided, but the answer was lost on the way (the conformance harness)",
    }).encode()  # fmt: skip

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.armed = 0  # answers still to lose
        self.lost = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_report = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and str(scope["path"]).endswith("/transactions")
        )
        if not (is_report and self.armed > 0):
            await self.app(scope, receive, send)
            return
        self.armed -= 1
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        if answer and answer[0].get("status") != 200:  # refused (a bad signature, say):
            self.armed += 1  # nothing was decided, so that answer goes through as it is
            for message in answer:
                await send(message)
            return
        self.lost += 1
        headers = [(b"content-type", b"application/problem+json"),
                   (b"content-length", str(len(self.PROBLEM)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self.PROBLEM})


@dataclass(frozen=True, slots=True)
class OperatorUnderTest:
    name: str
    operator_id: str
    service_id: str
    public_key: bytes
    url: str  # the conformance hooks' base URL
    verify_url: str
    wait_s: float = 10.0
    tls_verify: ssl.SSLContext | bool = True


@dataclass
class OperatorHarness:
    platform: ReferencePlatform
    platform_url: str
    operator: OperatorUnderTest
    platform_signer: Signer  # the suite speaks as the platform to the verify endpoint
    account_id: str  # the holder's account: applied for in the conformance campaign
    security_code: str
    applied_at: datetime
    http: httpx.Client  # to the operator under test
    answers: LosingAnswers  # in front of the platform: loses report answers on demand
    last_decided: float = 0.0  # time.monotonic() when decision() last saw one on account_id

    # --- the operator's contract and hooks ------------------------------------------------

    def verify(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """A call to the verify endpoint, signed by the platform unless ``headers`` are given."""
        url = self.operator.verify_url
        target = httpx.URL(url).raw_path.decode("ascii")
        sent = (
            headers if headers is not None else self.platform_signer.headers("POST", target, body)
        )
        return self.http.post(
            url, content=body, headers={**sent, "Content-Type": "application/json"}
        )

    def open_account(self, holder_name: str) -> tuple[str, str]:
        """A new test account at the service: (payment service ID, security code)."""
        body = self._hook("POST", "/v1/accounts", {"holder_name": holder_name})
        return str(body["account_id"]), str(body["security_code"])

    def till(self, amount: int, account_id: str | None = None, **extra: object) -> dict[str, Any]:
        """A charge (or, with ``kind="refund"``, a refund) rung up at the service's till."""
        body = {"account_id": account_id or self.account_id, "amount": amount}
        return self._hook("POST", "/v1/till", {**body, **extra})

    def credited(self, account_id: str | None = None) -> int:
        """The points the service shows for an account."""
        return int(self._hook("GET", f"/v1/accounts/{account_id or self.account_id}")["points"])

    def _hook(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.operator.url}{path}"
        try:
            answer = self.http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            why = tls_failure(exc) or exc  # an https service: its certificate and ca_file
            raise HarnessError(f"the conformance hook {method} {url} failed: {why}") from None
        if answer.is_error:
            raise HarnessError(
                f"the conformance hook {method} {url} answered {answer.status_code}: "
                f"{answer.text[:300]}"
            )
        result: dict[str, Any] = answer.json()
        return result

    def lose_next_answer(self) -> None:
        """The next report batch the platform decides loses its answer on the way back."""
        self.answers.armed += 1

    def answers_lost(self, since: int = 0) -> int:
        """How many answers were lost so far, once more than ``since`` were (or after the
        profile's wait_s).

        An answer counts as lost once the platform has finished it and it was held back,
        which is after its decision is visible in the database: a test that sees the decision
        and then at once counts the lost answers can count one too few (it did, on a busy
        machine). Disarming comes first, as the batch arrives, so that is no sign either."""
        deadline = time.monotonic() + self.operator.wait_s
        while self.answers.lost <= since and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.answers.lost

    # --- what the platform holds ------------------------------------------------------------

    def decision(self, transaction_id: str) -> StoredTransaction:
        """The platform's decision on a transaction, once the service has reported it (a
        service may report after its till answered: this waits up to the profile's wait_s)."""
        deadline = time.monotonic() + self.operator.wait_s
        while True:
            with self.platform.store.transaction() as uow:
                decided = next(
                    (t for t in uow.all_transactions()
                     if (t.operator_id, t.transaction_id)
                     == (self.operator.operator_id, transaction_id)),
                    None,
                )  # fmt: skip
            if decided is not None:
                if decided.account_id == self.account_id:
                    self.last_decided = time.monotonic()
                return decided
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the service never reported transaction {transaction_id} to the platform "
                    f"(waited {self.operator.wait_s:g} s)"
                )
            time.sleep(0.05)

    def granted(self, account_id: str | None = None) -> int:
        """What the platform's ledger holds for an account: the truth the operator follows."""
        account = account_id or self.account_id
        with self.platform.store.transaction() as uow:
            entries = uow.ledger_entries(operator_id=self.operator.operator_id)
        return sum(e.points for e in entries if e.account_id == account)

    def credited_settles(self, account_id: str | None = None, expected: int | None = None) -> int:
        """The service's credited points once they equal ``expected`` (by default the
        platform's grant), or as they stand after wait_s (a service may book later)."""
        return self._credited_by(time.monotonic() + self.operator.wait_s, account_id, expected)

    def credit_so_far(self) -> int:
        """The holder's credited points once the service has booked every grant so far, or
        as they stand wait_s after the last decision on the holder's account this harness saw
        (:meth:`decision`): where a test starts counting its own credit (a service may book an
        earlier test's grant after that test ended). A service that never books a grant fails
        the test that made it, not here."""
        return self._credited_by(self.last_decided + self.operator.wait_s, None, None)

    def _credited_by(self, deadline: float, account_id: str | None, expected: int | None) -> int:
        while True:
            credited = self.credited(account_id)
            target = self.granted(account_id) if expected is None else expected
            if credited == target or time.monotonic() > deadline:
                return credited
            time.sleep(0.05)

    def __repr__(self) -> str:  # pytest shows it in every failure: keep it to who is tested
        return f"OperatorHarness({self.operator.name!r} at {self.operator.url})"


# --- the sample operator and its defective variants ---------------------------------------------


class _RetryingWithNewIds(OperatorClient):
    """Defect: after each report it 'retries' with a fresh transaction ID and key."""

    def report(self, reports: list[Report]) -> list[Decision]:
        first = super().report(reports)
        again = [
            replace(r, transaction_id=r.transaction_id + "-retry",
                    idempotency_key=r.idempotency_key + "-retry")
            for r in reports
        ]  # fmt: skip
        super().report(again)
        return first


class _StampingEverythingNow(OperatorClient):
    """Defect: reports every charge as made now, not when it was made."""

    def report(self, reports: list[Report]) -> list[Decision]:
        now = datetime.now(UTC)
        return super().report([replace(r, occurred_at=now) for r in reports])


class _CreditsItsOwnWay(OperatorBooks):
    """Defect: credits 25% of the charge itself, ignoring the platform's decision."""

    def answered(self, decisions: list[Decision]) -> None:
        with self._lock:
            for decision in decisions:
                booked = self.transactions.get(decision.transaction_id)
                if booked is not None:
                    booked.points = booked.report.amount // 4


class _CreditsUnappliedAccounts(OperatorBooks):
    """Defect: credits 25% on accounts nobody applied with (a 'welcome bonus' of its own)."""

    def answered(self, decisions: list[Decision]) -> None:
        super().answered(decisions)
        with self._lock:
            for decision in decisions:
                booked = self.transactions.get(decision.transaction_id)
                if booked is not None and decision.outcome is Outcome.NO_APPLICATION:
                    booked.points = booked.report.amount // 4


def _accepting_unsigned(real: FastAPI, books: OperatorBooks) -> FastAPI:
    """Defect: its verify endpoint never checks who is asking."""
    app = FastAPI()

    @app.post("/v1/verify-account")
    async def verify(request: Request) -> dict[str, bool]:
        body = await request.json()
        return {"valid": books.verify(body["service_id"], body["account_id"],
                                      body["security_code"])}  # fmt: skip

    app.mount("/", real)
    return app


def _serve_sample_operator(
    stack: ExitStack, platform: ReferencePlatform, platform_url: str, defect: str | None
) -> OperatorUnderTest:
    # Not the sandbox's sample_operator: a defect swaps the books' or the client's class or
    # wraps the app, and the harness registers the operator under test itself (vendor or not).
    key = Ed25519PrivateKey.generate()
    signer = Signer(SAMPLE_OPERATOR_ID, key)
    books_type = {
        "credits_past_cap": _CreditsItsOwnWay,
        "credits_without_application": _CreditsUnappliedAccounts,
    }.get(defect or "", OperatorBooks)
    books = books_type(SAMPLE_OPERATOR_ID, SAMPLE_SERVICE_ID)
    client_type = {
        "grants_twice_on_retry": _RetryingWithNewIds,
        "ignores_charge_time": _StampingEverythingNow,
    }.get(defect or "", OperatorClient)
    client = client_type.connect(platform_url, signer)
    gives_up = defect == "gives_up_on_lost_answer"
    if gives_up:
        client.retries = 0
    app = create_operator_app(
        books, public_key_bytes(platform.signer.key), client,
        resend_every_s=None if gives_up else 5.0,
    )  # fmt: skip
    if defect == "accepts_unsigned":
        app = _accepting_unsigned(app, books)
    url = stack.enter_context(serving(app))
    name = "sample payment service (reference operator)"
    if defect:
        name = f"defective operator {defect}: {OPERATOR_DEFECTS[defect][0]}"
    return OperatorUnderTest(
        name, SAMPLE_OPERATOR_ID, SAMPLE_SERVICE_ID, public_key_bytes(key), url,
        f"{url}/v1/verify-account", wait_s=5.0,
    )  # fmt: skip


def _vendor_operator(profile: OperatorProfile) -> OperatorUnderTest:
    try:
        trust = profile.tls_verify
    except TlsConfigError as exc:
        raise HarnessError(f"ca_file: {exc}") from None
    return OperatorUnderTest(
        profile.name, profile.operator_id, profile.service_id, profile.public_key, profile.url,
        profile.verify_url, profile.wait_s, trust,
    )  # fmt: skip


def _applied_holder(
    harness_platform: ReferencePlatform,
    platform_url: str,
    operator: OperatorUnderTest,
    account_id: str,
    security_code: str,
) -> datetime:
    """A holder with a new emulated card reserves a MyKey ID and applies for ``account_id``;
    the platform verifies it with the operator. When the application was accepted."""
    jlis = harness_platform.jlis
    state = lifecycle.issue(
        jlis.ca, jlis.registry, random_holder(random.Random()), pin=EMULATED_PIN,
        password=EMULATED_PASSWORD, issued_on=datetime.now(UTC).date() - timedelta(days=1),
    )  # fmt: skip
    card = emulated_reader(state)
    with httpx.Client(base_url=platform_url, timeout=max(30.0, operator.wait_s)) as http:
        client = PlatformClient(http)
        try:
            client.reserve(card, EMULATED_PIN)
            application = client.apply(
                card, EMULATED_PIN, operator.service_id, account_id, security_code, CAMPAIGN_ID
            )
        except ClientRefusal as exc:
            raise HarnessError(
                f"a holder could not apply for the test account {account_id} at "
                f"{operator.service_id}: {exc.code}: {exc}. The platform verified it by a "
                f"signed POST to {operator.verify_url}; check that the service trusts the "
                "harness's platform key (mynahil conformance operator-setup) and knows the "
                "account it just opened"
            ) from None
    return datetime.fromisoformat(str(application["applied_at"]))


@contextmanager
def operator_harness(
    defect: str | None = None, profile: OperatorProfile | None = None
) -> Iterator[OperatorHarness]:
    """The stage for the operator suite: the sample operator (or ``defect``), or the vendor's
    service ``profile`` describes, registered at a harness platform with a holder who applied."""
    if defect is not None and defect not in OPERATOR_DEFECTS:
        raise ValueError(f"no operator defect {defect!r}; known: {', '.join(OPERATOR_DEFECTS)}")
    folder = Path(tempfile.mkdtemp(prefix="mynahil-operator-suite-"))
    # A vendor's service keeps trusting the same platform key from run to run.
    jlis_folder = profile.harness_dir if profile else folder / "jlis"
    vendor = _vendor_operator(profile) if profile else None
    # The platform's signed verify calls reach an https service through its private CA too.
    operator_tls: ssl.SSLContext | bool | None = vendor.tls_verify if vendor else None
    platform = build_platform(
        f"sqlite:///{folder / 'p.db'}", jlis_folder,
        scheme=conformance_scheme(datetime.now(UTC).date()), operator_tls=operator_tls,
    )  # fmt: skip
    with ExitStack() as stack:
        stack.callback(platform.close)
        answers = LosingAnswers(platform.app)
        if profile is None:
            local_url = platform_url = stack.enter_context(serving(answers))
            operator = _serve_sample_operator(stack, platform, platform_url, defect)
        else:
            try:
                local_url = stack.enter_context(
                    serving(answers, profile.platform_host, profile.platform_port)
                )
            except RuntimeError as exc:
                raise HarnessError(f"the harness's platform: {exc} (platform_listen)") from None
            platform_url = profile.platform_url  # as the vendor's service reaches it
            assert vendor is not None
            operator = vendor
        platform.points.register_operator(
            Operator(operator.operator_id, operator.name, operator.public_key,
                     verify_url=operator.verify_url),
            [PaymentService(operator.service_id, operator.operator_id, operator.name)],
        )  # fmt: skip
        http = stack.enter_context(httpx.Client(timeout=30, verify=operator.tls_verify))
        harness = OperatorHarness(
            platform,
            platform_url,
            operator,
            platform.signer,
            "",
            "",
            datetime.now(UTC),
            http,
            answers,
        )
        harness.account_id, harness.security_code = harness.open_account("Conformance Holder")
        harness.applied_at = _applied_holder(
            platform, local_url, operator, harness.account_id, harness.security_code
        )
        if profile is not None:  # another machine's clock may run a little behind the platform's
            time.sleep(CLOCK_SKEW_ALLOWANCE_S)
        yield harness
