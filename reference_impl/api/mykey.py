"""HTTP face of the MyKey service: translation only, no rules."""

from __future__ import annotations

import base64
import binascii
import os
from datetime import datetime
from functools import partial
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, Field
from starlette.routing import Route
from starlette.types import ASGIApp

from mynahil.reference_impl.mykey import LoginResult, MyKeyError, MyKeyService, Purpose

from .calls import run_call
from .fast import FastRoute
from .inputs import Body, bearer_token
from .problems import PROBLEM_RESPONSES

__all__ = ["fast_routes", "router"]

router = APIRouter(prefix="/v1/mykey", tags=["MyKey"], responses=PROBLEM_RESPONSES)


async def service(request: Request) -> MyKeyService:
    svc: MyKeyService = request.app.state.mykey
    return svc


Service = Annotated[MyKeyService, Depends(service)]


def b64_field(field: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MyKeyError("invalid_request", f"{field} is not base64") from None


async def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, credentials = (authorization or "").partition(" ")
    token = bearer_token(credentials) if scheme.lower() == "bearer" else None
    if token is None:
        raise MyKeyError("session_invalid", "send the session token as 'Authorization: Bearer …'")
    return token


Token = Annotated[str, Depends(bearer)]


class ChallengeRequest(Body):
    purpose: Purpose = Field(description="issue: to get a MyKey ID; login: to log in with the card")


class ChallengeResponse(BaseModel):
    challenge_id: str
    nonce: str = Field(description="base64; the card signs SHA-256 DigestInfo of these bytes")
    expires_at: datetime


class CardProof(Body):
    challenge_id: str = Field(min_length=1, max_length=64)
    certificate: str = Field(
        description="base64 DER of the user-authentication certificate", max_length=8192
    )
    signature: str = Field(
        description="base64 of the card's signature over the nonce", max_length=1024
    )


class IssueRequest(CardProof):
    chosen_id: str | None = Field(
        default=None, description="the ID the holder picks (portal); omit for automatic"
    )


class IssueResponse(BaseModel):
    mykey_id: str
    created: bool


class PasswordLogin(Body):
    mykey_id: str = Field(max_length=32)
    password: str = Field(max_length=128)


class SessionResponse(BaseModel):
    token: str
    mykey_id: str
    method: str
    expires_at: datetime


class NewPassword(Body):
    password: str = Field(max_length=128)


class ChangeId(Body):
    chosen_id: str | None = None


class MyKeyIdResponse(BaseModel):
    mykey_id: str


def _proof(body: CardProof) -> tuple[str, bytes, bytes]:
    """The card's answer as the service takes it: challenge ID, certificate, signature."""
    return (
        body.challenge_id,
        b64_field("certificate", body.certificate),
        b64_field("signature", body.signature),
    )


def _session(result: LoginResult) -> SessionResponse:
    return SessionResponse(
        token=result.token,
        mykey_id=result.mykey_id,
        method=result.method.value,
        expires_at=result.expires_at,
    )


# The holders' hot endpoints are coroutines that place the service call themselves
# (:mod:`.calls`: on the event loop where the store has one writer and it is free, else in a
# worker thread): FastAPI runs a plain ``def`` endpoint in a thread and then validates its
# answer in a thread again, two hand-offs a request where one or none does. The challenge, the
# issuance and the card log-in are served by ``serve_…`` functions, which :func:`fast_routes`
# also serve without FastAPI's per-request machinery when the body is valid (:mod:`.fast`).


@router.post("/challenges", status_code=status.HTTP_201_CREATED)
async def new_challenge(body: ChallengeRequest, request: Request) -> ChallengeResponse:
    """A single-use challenge for the card to sign."""
    return (await serve_challenge(request, body))[1]


async def serve_challenge(
    request: Request, body: ChallengeRequest
) -> tuple[int, ChallengeResponse]:
    svc: MyKeyService = request.app.state.mykey
    c = await run_call(request, partial(svc.new_challenge, body.purpose))
    return status.HTTP_201_CREATED, ChallengeResponse(
        challenge_id=c.challenge_id,
        nonce=base64.b64encode(c.nonce).decode(),
        expires_at=c.expires_at,
    )


@router.post("/ids", status_code=status.HTTP_201_CREATED)
async def issue(body: IssueRequest, request: Request, response: Response) -> IssueResponse:
    """Reservation: a MyKey ID bound to the card's certificate (the existing one if any)."""
    response.status_code, answer = await serve_issue(request, body)
    return answer


async def serve_issue(request: Request, body: IssueRequest) -> tuple[int, IssueResponse]:
    svc: MyKeyService = request.app.state.mykey
    result = await run_call(request, partial(svc.issue, *_proof(body), chosen_id=body.chosen_id))
    created = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return created, IssueResponse(mykey_id=result.mykey_id, created=result.created)


@router.post("/sessions/card", status_code=status.HTTP_201_CREATED)
async def login_card(body: CardProof, request: Request) -> SessionResponse:
    return (await serve_card_login(request, body))[1]


async def serve_card_login(request: Request, body: CardProof) -> tuple[int, SessionResponse]:
    svc: MyKeyService = request.app.state.mykey
    login = await run_call(request, partial(svc.login_with_card, *_proof(body)))
    return status.HTTP_201_CREATED, _session(login)


# Password checks (scrypt: ~16 MiB and tens of ms of CPU each) run at most this many at once,
# in their own lane: a flood of guesses queues here, on the event loop, instead of taking every
# worker thread, so requests that need no scrypt (card logins, the holder's page) still run.
PASSWORD_LANES = max(1, min(4, os.cpu_count() or 1))


def _lanes(request: Request) -> anyio.CapacityLimiter:
    """The app's password lane (made on first use, inside the app's event loop)."""
    lanes: anyio.CapacityLimiter | None = getattr(request.app.state, "password_lanes", None)
    if lanes is None:
        lanes = request.app.state.password_lanes = anyio.CapacityLimiter(PASSWORD_LANES)
    return lanes


@router.post("/sessions/password", status_code=status.HTTP_201_CREATED)
async def login_password(body: PasswordLogin, svc: Service, request: Request) -> SessionResponse:
    """MyKey ID + page password. Every refusal is the same 401 ``login_failed``."""
    attempt = await run_call(request, partial(svc.claim_password_attempt, body.mykey_id))
    matched = await anyio.to_thread.run_sync(
        svc.check_password, attempt, body.password, limiter=_lanes(request)
    )
    source = request.client.host if request.client else "unknown"
    return _session(
        await run_call(
            request, partial(svc.finish_password_attempt, attempt, matched, source=source)
        )
    )


@router.put("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def set_password(body: NewPassword, token: Token, svc: Service) -> None:
    """Set or reset the page password (card login only)."""
    svc.set_password(token, body.password)


@router.get("/me")
def show_id(token: Token, svc: Service) -> MyKeyIdResponse:
    """The holder's MyKey ID (card login only: for a forgotten ID)."""
    return MyKeyIdResponse(mykey_id=svc.show_mykey_id(token))


@router.post("/me/id")
def change_id(body: ChangeId, token: Token, svc: Service) -> MyKeyIdResponse:
    """A new MyKey ID, effective at once; the old one stops working."""
    return MyKeyIdResponse(mykey_id=svc.change_mykey_id(token, body.chosen_id))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def revoke(token: Token, svc: Service) -> None:
    """Revoke the MyKey ID for good (card login only)."""
    svc.revoke(token)


def fast_routes(app_router: ASGIApp) -> list[Route]:
    """The holders' hottest POSTs as :mod:`.fast` serves them, to go before ``app_router``'s
    other routes."""
    return [
        FastRoute("/v1/mykey/challenges", ChallengeRequest, serve_challenge, app_router),
        FastRoute("/v1/mykey/ids", IssueRequest, serve_issue, app_router),
        FastRoute("/v1/mykey/sessions/card", CardProof, serve_card_login, app_router),
    ]
