"""The sample operator's HTTP face: open an account, the verify endpoint the platform calls
(signed by the platform), and a till that books a charge and reports it to the platform.

A report the platform never answered (every try lost) stays booked as pending: the till
answers 202, and a background task sends the pending reports again until they are decided."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from mynahil.reference_impl.points import PointsError, TransactionKind
from mynahil.reference_impl.points.signing import check_signature

from .books import OperatorBooks
from .client import OperatorClient, PlatformUnavailable

__all__ = ["create_operator_app"]


class NewAccount(BaseModel):
    holder_name: str = Field(min_length=1, max_length=100)


class AccountOut(BaseModel):
    service_id: str
    account_id: str
    security_code: str


class VerifyIn(BaseModel):
    service_id: str
    account_id: str
    security_code: str


class TillIn(BaseModel):
    account_id: str
    amount: Annotated[int, Field(gt=0)]
    kind: TransactionKind = TransactionKind.CHARGE
    refund_of: str | None = None
    occurred_at: datetime | None = None


class TillOut(BaseModel):
    transaction_id: str
    outcome: str
    points: int
    total_after: int | None


def _resending(
    books: OperatorBooks, platform: OperatorClient, every_s: float
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that sends pending reports again every ``every_s`` while the app runs."""

    async def resend_pending() -> None:
        while True:
            await asyncio.sleep(every_s)
            pending = books.pending()
            if not pending:
                continue
            try:
                decisions = await asyncio.to_thread(platform.report, pending)
            except PointsError:
                continue  # still unavailable (or refused whole): the reports stay pending
            books.answered(decisions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(resend_pending())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return lifespan


def create_operator_app(
    books: OperatorBooks,
    platform_key: bytes,
    platform: OperatorClient | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    resend_every_s: float | None = 5.0,
) -> FastAPI:
    """``platform_key`` verifies the platform's calls; ``platform`` reports charges to it;
    ``clock`` stamps the till's charges (the platform's business time when it replays);
    pending reports are sent again every ``resend_every_s`` (None: never)."""
    business_now = clock or (lambda: datetime.now(UTC))
    lifespan = None
    if platform is not None and resend_every_s is not None:
        lifespan = _resending(books, platform, resend_every_s)
    app = FastAPI(
        title=f"sample payment service {books.service_id}", version="1.0.0", lifespan=lifespan
    )
    seen_nonces: set[str] = set()  # replays of the platform's calls; a sample keeps them all

    @app.post("/v1/accounts", status_code=201)
    def open_account(body: NewAccount) -> AccountOut:
        account = books.open_account(body.holder_name)
        return AccountOut(
            service_id=books.service_id,
            account_id=account.account_id,
            security_code=account.security_code,
        )

    @app.get("/v1/accounts/{account_id}")
    def account_points(account_id: str) -> dict[str, int | str]:
        """The points the service credited to an account (as the holder's app shows them)."""
        if account_id not in books.accounts:
            raise HTTPException(404, f"no account {account_id}")
        return {"account_id": account_id, "points": books.balance(account_id)}

    @app.post("/v1/verify-account")
    async def verify_account(request: Request) -> dict[str, bool]:
        raw = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            signed = check_signature(
                platform_key, "POST", target, request.headers, raw, datetime.now(UTC)
            )
        except PointsError as exc:
            raise HTTPException(401, str(exc)) from None
        if signed.nonce in seen_nonces:
            raise HTTPException(401, "replayed request")
        seen_nonces.add(signed.nonce)
        body = VerifyIn.model_validate_json(raw)
        return {"valid": books.verify(body.service_id, body.account_id, body.security_code)}

    @app.post(
        "/v1/till",
        responses={
            202: {
                "description": "booked; the platform did not answer "
                "yet: the report is sent again until it does"
            }
        },
    )
    def till(body: TillIn, response: Response) -> TillOut:
        if platform is None:
            raise HTTPException(503, "this operator is not connected to a platform")
        if body.account_id not in books.accounts:
            raise HTTPException(404, f"no account {body.account_id}")
        report = books.book(
            body.account_id,
            body.amount,
            body.occurred_at or business_now(),
            kind=body.kind,
            refund_of=body.refund_of,
        )
        try:
            decisions = platform.report([report])
        except PlatformUnavailable:  # the client retried already; the resender goes on
            response.status_code = status.HTTP_202_ACCEPTED
            return TillOut(
                transaction_id=report.transaction_id, outcome="pending", points=0,
                total_after=None,
            )  # fmt: skip
        except PointsError as exc:
            raise HTTPException(
                502, f"booked as {report.transaction_id}; the platform refused it: {exc}"
            ) from None
        books.answered(decisions)
        decision = decisions[0]
        return TillOut(
            transaction_id=decision.transaction_id,
            outcome=decision.outcome.value,
            points=decision.points,
            total_after=decision.total_after,
        )

    return app
