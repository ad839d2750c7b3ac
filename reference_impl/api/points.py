"""HTTP face of the point system: holders apply; operators, signing every request, report
transactions, pull the feed of applications, fetch settlements and reconcile. Translation only."""

from __future__ import annotations

import base64
from datetime import date, datetime
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mynahil.reference_impl.points import (
    Application,
    CardProof,
    Decision,
    Operator,
    PointsError,
    PointsService,
    Report,
    TransactionKind,
)
from mynahil.reference_impl.points.batch import MAX_BATCH
from mynahil.reference_impl.points.service import OperatorRequest
from mynahil.reference_impl.points.settlement import parse_operator_records
from mynahil.reference_impl.points.signing import SIGNATURE

from .inputs import Body
from .mykey import CardProof as CardProofBody
from .mykey import Token, b64_field
from .problems import PROBLEM_RESPONSES

__all__ = ["holder_router", "operator_router"]

holder_router = APIRouter(
    prefix="/v1/points", tags=["Points: holders"], responses=PROBLEM_RESPONSES
)
operator_router = APIRouter(
    prefix="/v1/operators/{operator_id}", tags=["Points: operators"], responses=PROBLEM_RESPONSES
)


async def service(request: Request) -> PointsService:
    svc: PointsService = request.app.state.points
    return svc


Service = Annotated[PointsService, Depends(service)]


# --- holders ----------------------------------------------------------------------------------


class ApplicationRequest(CardProofBody):
    service_id: str = Field(min_length=1, max_length=64)
    account_id: str = Field(min_length=1, max_length=128, description="the payment service ID")
    security_code: str = Field(min_length=1, max_length=64)
    campaign_id: str | None = Field(default=None, description="omit: the campaign open today")


class ApplicationOut(BaseModel):
    application_id: int
    campaign_id: str
    service_id: str
    account_id: str
    applied_at: datetime
    card_applied_on: date
    feed_seq: int


def _application(a: Application) -> ApplicationOut:
    return ApplicationOut(
        application_id=a.application_id,
        campaign_id=a.campaign_id,
        service_id=a.service_id,
        account_id=a.account_id,
        applied_at=a.applied_at,
        card_applied_on=a.card_applied_on,
        feed_seq=a.feed_seq,
    )


class HolderPointsOut(BaseModel):
    mykey_id: str
    applications: list[ApplicationOut] = Field(
        description="the person's applications, made with this or an earlier MyKey ID"
    )
    points: dict[str, int] = Field(description="what this MyKey ID holds, per cap group")
    cap_used: dict[str, int] = Field(
        description="what the person was granted per cap group over all their MyKey IDs "
        "(a revoked ID's points count here but cannot be used)"
    )


class CampaignOut(BaseModel):
    campaign_id: str
    title: str
    opens: date
    closes: date
    rate_percent: int
    cap_yen: int
    spend_starts: date
    spend_ends: date


@holder_router.post("/applications", status_code=status.HTTP_201_CREATED)
async def apply(body: ApplicationRequest, svc: Service) -> ApplicationOut:
    """Application (申込): choose one payment service, with the card. Never changes after."""
    proof = CardProof(
        body.challenge_id,
        b64_field("certificate", body.certificate),
        b64_field("signature", body.signature),
    )
    # One hand-off to a worker thread (see the note in api/mykey.py).
    applied = await run_in_threadpool(
        svc.apply, proof, body.service_id, body.account_id, body.security_code, body.campaign_id
    )
    return _application(applied)


class BonusRequest(CardProofBody):
    campaign_id: str = Field(min_length=1, max_length=32)
    kind: str = Field(min_length=1, max_length=64, description="e.g. health_insurance")


class BonusOut(BaseModel):
    campaign_id: str
    kind: str
    points: int
    service_id: str
    account_id: str


@holder_router.post("/bonuses", status_code=status.HTTP_201_CREATED)
async def claim_bonus(body: BonusRequest, svc: Service) -> BonusOut:
    """A registration bonus (round 2), once per person, paid to the chosen service."""
    proof = CardProof(
        body.challenge_id,
        b64_field("certificate", body.certificate),
        b64_field("signature", body.signature),
    )
    entry = await run_in_threadpool(svc.claim_bonus, proof, body.campaign_id, body.kind)
    return BonusOut(
        campaign_id=entry.campaign_id,
        kind=body.kind,
        points=entry.points,
        service_id=entry.service_id,
        account_id=entry.account_id,
    )


@holder_router.get("/me")
def my_points(token: Token, svc: Service) -> HolderPointsOut:
    """The holder's applications and points per cap group."""
    held = svc.holder_points(token)
    return HolderPointsOut(
        mykey_id=held.mykey_id,
        applications=[_application(a) for a in held.applications],
        points=held.points,
        cap_used=held.cap_used,
    )


@holder_router.get("/campaigns")
def campaigns(svc: Service) -> list[CampaignOut]:
    return [
        CampaignOut(
            campaign_id=c.campaign_id,
            title=c.title,
            opens=c.opens,
            closes=c.closes,
            rate_percent=c.spend.rate_percent,
            cap_yen=c.spend.cap_yen,
            spend_starts=c.spend.starts,
            spend_ends=c.spend.ends,
        )
        for c in svc.scheme.campaigns.values()
    ]


class PlatformKey(BaseModel):
    public_key: str = Field(description="base64 raw Ed25519 key: verifies the platform's calls")


@holder_router.get("/platform-key")
def platform_key(request: Request) -> PlatformKey:
    """The key operators verify the platform's account-verification calls with."""
    key: bytes = request.app.state.platform_public_key
    return PlatformKey(public_key=base64.b64encode(key).decode())


# --- operators --------------------------------------------------------------------------------


class ReportIn(Body):
    """One report. Strict: ``amount`` is a JSON integer and ``occurred_at`` an RFC 3339
    string with its offset; ``"1000"``, ``1000.0``, ``true`` or a Unix time are refused."""

    model_config = ConfigDict(strict=True)

    idempotency_key: str = Field(min_length=1, max_length=128)
    transaction_id: str = Field(min_length=1, max_length=128)
    service_id: str = Field(min_length=1, max_length=64)
    account_id: str = Field(min_length=1, max_length=128)
    kind: TransactionKind
    amount: int = Field(gt=0, le=100_000_000)
    occurred_at: datetime
    original_transaction_id: str | None = Field(default=None, max_length=128)


class ReportBatch(Body):
    transactions: list[ReportIn] = Field(min_length=1, max_length=MAX_BATCH)


class DecisionOut(BaseModel):
    idempotency_key: str
    transaction_id: str
    outcome: str
    points: int
    total_after: int | None
    replayed: bool


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut]


class FeedOut(BaseModel):
    applications: list[ApplicationOut]
    next_after: int = Field(description="pass as `after` next time; nothing is ever skipped")


class DifferenceOut(BaseModel):
    transaction_id: str
    problem: str
    operator: str | None
    platform: str | None


class ReconciliationOut(BaseModel):
    month: str
    differences: list[DifferenceOut]


_BATCH = TypeAdapter(ReportBatch)


# The signature scheme as the OpenAPI document declares it (components.securitySchemes and
# `security` on every operator route). OpenAPI has no type for a signed request, so it is the
# apiKey-in-header type on the signature header; the checking is :func:`signed_operator`'s.
OPERATOR_SIGNATURE = APIKeyHeader(
    name=SIGNATURE,
    scheme_name="MynahilOperatorSignature",
    description=(
        "Every operator request is signed with the operator's Ed25519 key (scheme "
        "mynahil-ed25519-v1). Four headers go together: X-Mynahil-Signer (the operator ID), "
        "X-Mynahil-Timestamp (Unix seconds, decimal digits), X-Mynahil-Nonce (8 to 64 visible "
        "ASCII characters, never reused) and X-Mynahil-Signature: standard base64 of the "
        "64-byte Ed25519 signature over the UTF-8 bytes of METHOD, PATH[?QUERY], TIMESTAMP, "
        "NONCE and the lowercase hex SHA-256 of the body, joined by LF (0x0A). Refusals: 401 "
        "request_unsigned, operator_unknown, request_stale (more than 300 s from the "
        "platform's clock), request_signature_invalid, request_replayed; 403 "
        "operator_mismatch. Byte-by-byte contract and test vectors: docs/operator-signing.md "
        "and docs/operator-signing-vectors.json. The platform signs its calls to an operator's "
        "verify URL the same way (its key: GET /v1/points/platform-key)."
    ),
    auto_error=False,  # a missing header is the service's request_unsigned, as a problem
)


async def operator_request(
    request: Request, _signature: Annotated[str | None, Security(OPERATOR_SIGNATURE)]
) -> OperatorRequest:
    """The operator's request as it arrived, its signature not yet checked."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    source = request.client.host if request.client else "unknown"
    return OperatorRequest(request.method, target, request.headers, await request.body(), source)


Incoming = Annotated[OperatorRequest, Depends(operator_request)]


async def _authenticate(
    svc: PointsService, operator_id: str, incoming: OperatorRequest
) -> Operator:
    return await run_in_threadpool(
        partial(svc.authenticate, operator_id=operator_id, source=incoming.source),
        incoming.method,
        incoming.target,
        incoming.headers,
        incoming.body,
    )


async def signed_operator(operator_id: str, incoming: Incoming, svc: Service) -> Operator:
    """The operator that signed this request; it must be the one the path names."""
    return await _authenticate(svc, operator_id, incoming)


SignedOperator = Annotated[Operator, Depends(signed_operator)]


def _decision(d: Decision) -> DecisionOut:
    return DecisionOut(
        idempotency_key=d.idempotency_key,
        transaction_id=d.transaction_id,
        outcome=d.outcome.value,
        points=d.points,
        total_after=d.total_after,
        replayed=d.replayed,
    )


@operator_router.post(
    "/transactions",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReportBatch.model_json_schema()}},
        }
    },
)
async def report(operator_id: str, incoming: Incoming, svc: Service) -> DecisionsOut:
    """Report charges, purchases and refunds (1 to 5,000 per batch), each with an idempotency
    key. Decided and committed before the answer; a retried key gets its first answer."""
    # The signature is checked in the batch's own transaction (one audit record per batch).
    try:
        batch = _BATCH.validate_json(incoming.body)
    except ValidationError as exc:
        await _authenticate(svc, operator_id, incoming)  # an unsigned request is refused first
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise PointsError("invalid_request", f"{where}: {first.get('msg', 'invalid')}") from None
    reports = [
        Report(
            idempotency_key=r.idempotency_key,
            transaction_id=r.transaction_id,
            service_id=r.service_id,
            account_id=r.account_id,
            kind=r.kind,
            amount=r.amount,
            occurred_at=r.occurred_at,
            original_transaction_id=r.original_transaction_id,
        )
        for r in batch.transactions
    ]
    decisions = await run_in_threadpool(partial(svc.report, signed=incoming), operator_id, reports)
    return DecisionsOut(decisions=[_decision(d) for d in decisions])


@operator_router.get("/applications")
def feed(
    operator: SignedOperator,
    svc: Service,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> FeedOut:
    """New applications for the operator's services, oldest first, from a cursor."""
    found = svc.applications_feed(operator.operator_id, after, limit)
    return FeedOut(
        applications=[_application(a) for a in found],
        next_after=found[-1].feed_seq if found else after,
    )


@operator_router.get("/settlements/{month}", response_model=None)
def settlement(
    month: str,
    operator: SignedOperator,
    svc: Service,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The month's settlement (JST): every ledger movement for the operator, with totals."""
    result = svc.settlement(operator.operator_id, month)
    if format == "csv":
        return Response(result.to_csv(), media_type="text/csv")
    return Response(result.to_json(), media_type="application/json")


@operator_router.post("/reconciliations/{month}")
async def reconciliation(
    month: str, request: Request, operator: SignedOperator, svc: Service
) -> ReconciliationOut:
    """Send your books for the month (CSV: transaction_id,kind,amount,points); every
    difference from the platform's records comes back."""
    try:
        records = parse_operator_records((await request.body()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PointsError("invalid_request", f"records: {exc}") from None
    differences = await run_in_threadpool(svc.reconcile, operator.operator_id, month, records)
    return ReconciliationOut(
        month=month,
        differences=[DifferenceOut(**d.as_dict()) for d in differences],
    )
