"""Errors as RFC 9457 problem details, with the domain's stable codes.

The domain raises :class:`~mynahil.reference_impl.mykey.MyKeyError` with a code; this module is the
one place that decides the HTTP status for each code.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.mykey.ports import StoreUnavailable

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_RESPONSES",
    "STATUS_BY_CODE",
    "Problem",
    "install_problem_handlers",
    "problem",
]

PROBLEM_BASE = "https://mynahil.invalid/problems/"
MEDIA_TYPE = "application/problem+json"

STATUS_BY_CODE: dict[str, int] = {
    "challenge_unknown": 400,
    "challenge_used": 409,
    "challenge_foreign": 400,
    "challenge_expired": 410,
    "certificate_invalid": 400,
    "certificate_untrusted": 403,
    "certificate_not_yet_valid": 403,
    "certificate_expired": 403,
    "certificate_revoked": 403,
    "certificate_unknown": 403,
    "signature_invalid": 403,
    "mykey_id_invalid": 422,
    "mykey_id_taken": 409,
    "mykey_id_exhausted": 503,
    "issuance_raced": 409,
    "mykey_not_found": 404,
    "mykey_revoked": 403,
    "mykey_id_stopped": 403,  # the help desk stopped it
    "mykey_id_already_stopped": 409,
    "mykey_id_already_active": 409,
    "login_failed": 401,
    "session_invalid": 401,
    "card_login_required": 403,
    "password_invalid": 422,
    "invalid_request": 422,
    # the point system
    "campaign_unknown": 404,
    "campaign_closed": 403,
    "not_eligible": 403,
    "service_unknown": 404,
    "account_not_verified": 403,
    "account_taken": 409,
    "already_applied": 409,
    "operator_unavailable": 503,
    "operator_unknown": 401,
    "operator_exists": 409,
    "operator_mismatch": 403,
    "request_unsigned": 401,
    "request_stale": 401,
    "request_replayed": 401,
    "request_signature_invalid": 401,
    "busy": 503,
    "storage_full": 503,
    "bonus_unknown": 404,
    "bonus_already_granted": 409,
    "not_applied": 403,
    "registration_missing": 403,
    "registration_too_late": 403,
    "registry_unavailable": 503,
    "registration_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    # staff (mynahil.reference_impl.staff)
    "staff_unauthenticated": 401,
    "staff_forbidden": 403,
}


class Problem(BaseModel):
    """An RFC 9457 problem, with the platform's stable ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
    }


# Declared on every router, so the OpenAPI document says how errors really look.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response("Bad request (see `code`)"),
    401: _problem_response("Not authenticated: session, operator signature or staff token"),
    403: _problem_response("Refused (see `code`)"),
    404: _problem_response("Not found"),
    409: _problem_response("Conflict (see `code`)"),
    410: _problem_response("Gone: the challenge expired"),
    413: _problem_response("The request body is over 8 MiB (`body_too_large`)"),
    422: _problem_response("Invalid request: `detail` names the field"),
    429: _problem_response("Too many attempts: `Retry-After` says when"),
    503: _problem_response("Try again later"),
}


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    titles = {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        408: "Request timeout",
        410: "Gone",
        413: "Content too large",
        422: "Unprocessable content",
        429: "Too many requests",
        503: "Service unavailable",
    }
    body = {
        "type": PROBLEM_BASE + code,
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MyKeyError)
    status = STATUS_BY_CODE.get(exc.code, 400)
    response = problem(status, exc.code, str(exc))
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER["busy"])
    if exc.code == "staff_unauthenticated":
        response.headers["WWW-Authenticate"] = 'Bearer realm="mynahil staff"'
    return response


# Seconds a client should wait before retrying, by StoreUnavailable.kind.
RETRY_AFTER: dict[str, int] = {"busy": 1, "full": 60}


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A busy or full store: 503 with Retry-After; the transaction was rolled back."""
    assert isinstance(exc, StoreUnavailable)
    if exc.kind == "full":
        code, detail = "storage_full", "the platform's storage is full; nothing was changed"
    else:
        code, detail = "busy", "the platform is busy; nothing was changed: retry shortly"
    response = problem(503, code, detail)
    response.headers["Retry-After"] = str(RETRY_AFTER.get(exc.kind, 1))
    return response


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
            "message": e.get("msg", ""),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem(422, "invalid_request", detail, errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
             413: "body_too_large"}  # fmt: skip
    response = problem(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
    if exc.status_code in (408, 413):  # the rest of the body is not read: end the connection
        response.headers["Connection"] = "close"
    return response


def install_problem_handlers(app: Any) -> None:
    app.add_exception_handler(MyKeyError, _domain)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
