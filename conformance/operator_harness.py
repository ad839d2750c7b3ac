"""The harness an operator endpoint is certified in: a reference platform replaying round 1 on
loopback, the operator's service beside it (the sample one, or a deliberately defective one),
and a holder who applied for an account there."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request

from reference_impl.operator import OperatorBooks, OperatorClient, create_operator_app
from reference_impl.platform import ReferencePlatform, build_platform, serving, shifted_clock
from reference_impl.points import Application, Decision, Operator, PaymentService, Report
from reference_impl.points.signing import Signer, public_key_bytes

__all__ = ["OPERATOR_DEFECTS", "OperatorHarness", "operator_harness"]

AS_OF = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
OPERATOR_ID, SERVICE_ID = "operator-under-test", "pay-under-test"

# name -> (what is wrong, the requirement that must fail)
OPERATOR_DEFECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grants_twice_on_retry": (
        "retries a report under a new transaction ID and key", ("OP-REPORT-001",)),
    "accepts_unsigned": ("answers verify calls nobody signed", ("OP-VERIFY-002",)),
    "credits_past_cap": (
        "credits 25% of every charge, whatever the platform decided", ("OP-CAP-001",)),
}  # fmt: skip


@dataclass
class OperatorHarness:
    platform: ReferencePlatform
    platform_url: str
    operator_url: str
    platform_signer: Signer  # the suite speaks as the platform to the verify endpoint
    account_id: str
    security_code: str

    def verify(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        url = f"{self.operator_url}/v1/verify-account"
        sent = (
            headers
            if headers is not None
            else self.platform_signer.headers("POST", "/v1/verify-account", body)
        )
        return httpx.post(url, content=body, headers={**sent, "Content-Type": "application/json"})

    def till(self, amount: int, **extra: object) -> dict[str, object]:
        answer = httpx.post(
            f"{self.operator_url}/v1/till",
            json={"account_id": self.account_id, "amount": amount, **extra},
            timeout=30,
        )
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result

    def credited(self) -> int:
        answer = httpx.get(f"{self.operator_url}/v1/accounts/{self.account_id}")
        answer.raise_for_status()
        return int(answer.json()["points"])

    def granted(self) -> int:
        """What the platform's ledger holds for the account: the truth the operator follows."""
        with self.platform.store.transaction() as uow:
            entries = uow.ledger_entries(operator_id=OPERATOR_ID)
        return sum(e.points for e in entries if e.account_id == self.account_id)


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


class _CreditsItsOwnWay(OperatorBooks):
    """Defect: credits 25% of the charge itself, ignoring the platform's decision."""

    def answered(self, decisions: list[Decision]) -> None:
        with self._lock:
            for decision in decisions:
                booked = self.transactions.get(decision.transaction_id)
                if booked is not None:
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


@contextmanager
def operator_harness(defect: str | None = None) -> Iterator[OperatorHarness]:
    if defect is not None and defect not in OPERATOR_DEFECTS:
        raise ValueError(f"no operator defect {defect!r}; known: {', '.join(OPERATOR_DEFECTS)}")
    folder = Path(tempfile.mkdtemp(prefix="mynahil-operator-suite-"))
    platform = build_platform(f"sqlite:///{folder / 'p.db'}", folder / "jlis", as_of=AS_OF)
    with ExitStack() as stack:
        stack.callback(platform.close)
        url = stack.enter_context(serving(platform.app))
        key = Ed25519PrivateKey.generate()
        signer = Signer(OPERATOR_ID, key)
        books_type = _CreditsItsOwnWay if defect == "credits_past_cap" else OperatorBooks
        books = books_type(OPERATOR_ID, SERVICE_ID)
        client_type = _RetryingWithNewIds if defect == "grants_twice_on_retry" else OperatorClient
        client = client_type.connect(url, signer)
        app = create_operator_app(
            books, public_key_bytes(platform.signer.key), client,
            shifted_clock(platform.mykey.clock()),
        )  # fmt: skip
        if defect == "accepts_unsigned":
            app = _accepting_unsigned(app, books)
        operator_url = stack.enter_context(serving(app))
        platform.points.register_operator(
            Operator(OPERATOR_ID, "Operator under test", public_key_bytes(key),
                     verify_url=f"{operator_url}/v1/verify-account"),
            [PaymentService(SERVICE_ID, OPERATOR_ID, "Pay under test")],
        )  # fmt: skip
        account = books.open_account("Conformance Holder")
        with platform.store.transaction() as uow:
            record = uow.create_record("CONF0001", AS_OF)
            uow.link_account(SERVICE_ID, account.account_id, record.record_id)
            uow.add_application(
                Application(0, "round1", record.record_id, SERVICE_ID, account.account_id,
                            OPERATOR_ID, AS_OF - timedelta(days=1), date(2020, 6, 1), 0)
            )  # fmt: skip
        yield OperatorHarness(
            platform, url, operator_url, platform.signer, account.account_id, account.security_code
        )
