"""An operator's signed HTTP client for the platform's operator API."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import stamina

from mynahil.reference_impl.points import Decision, Outcome, PointsError, Report
from mynahil.reference_impl.points.signing import Signer
from mynahil.tls import client_verify, tls_failure

__all__ = ["RETRYABLE_STATUS", "OperatorClient", "PlatformUnavailable", "report_json"]


def report_json(report: Report) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotency_key": report.idempotency_key,
        "transaction_id": report.transaction_id,
        "service_id": report.service_id,
        "account_id": report.account_id,
        "kind": report.kind.value,
        "amount": report.amount,
        "occurred_at": report.occurred_at.isoformat(),
    }
    if report.original_transaction_id is not None:
        body["original_transaction_id"] = report.original_transaction_id
    return body


class _Lost(Exception):
    """One try whose answer was lost; stamina tries again."""

    def __init__(self, code: str, what: str) -> None:
        super().__init__(what)
        self.code, self.what = code, what

    def detail(self, tries: int) -> str:
        if self.code == "platform_unreachable":
            return self.what
        return f"{self.what} after {tries} tries"


class PlatformUnavailable(PointsError):
    """Every try was lost (no connection, or 502/503/504): the platform may or may not have
    decided; the same request may be sent again later."""


# Answers worth another try: the platform may have decided and committed before the answer
# was lost, so a retry must send the same request again (same idempotency keys).
RETRYABLE_STATUS: frozenset[int] = frozenset({502, 503, 504})


@dataclass
class OperatorClient:
    """The platform's operator API, signed. A lost answer (a dropped connection, 502/503/504) is
    retried with the same body, signed afresh (a nonce is single-use): the platform answers a
    report it already decided from its store, so a retry never grants twice."""

    http: httpx.Client
    signer: Signer
    retries: int = 4
    backoff_s: float = 0.1  # doubled after each try

    @classmethod
    def connect(
        cls,
        platform_url: str,
        signer: Signer,
        timeout: float = 30.0,
        verify: ssl.SSLContext | bool | None = None,
    ) -> OperatorClient:
        """``verify`` checks an https platform's certificate (default: ``client_verify()``:
        ``$MYNAHIL_CA_FILE``, else the system's trust store)."""
        trust = client_verify() if verify is None else verify
        http = httpx.Client(base_url=platform_url.rstrip("/"), timeout=timeout, verify=trust)
        return cls(http, signer)

    @property
    def _base(self) -> str:
        return f"/v1/operators/{self.signer.name}"

    def _send(self, method: str, target: str, body: bytes = b"", content_type: str = "") -> Any:
        try:
            for attempt in stamina.retry_context(
                on=_Lost, attempts=self.retries + 1, wait_initial=self.backoff_s,
                wait_exp_base=2, wait_jitter=0.0, wait_max=60.0, timeout=None,
            ):  # fmt: skip
                with attempt:
                    return self._try(method, target, body, content_type)
        except _Lost as lost:
            raise PlatformUnavailable(lost.code, lost.detail(self.retries + 1)) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _try(self, method: str, target: str, body: bytes, content_type: str) -> Any:
        """One try, signed afresh (a nonce is single-use); raises :class:`_Lost` when the
        connection failed or the answer was 502/503/504."""
        headers = self.signer.headers(method, target, body)
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self.http.request(method, target, content=body or None, headers=headers)
        except httpx.TransportError as exc:
            failure = tls_failure(exc)
            if failure is not None:  # another try now meets the same certificate
                raise PlatformUnavailable(
                    "platform_untrusted", f"{self.http.base_url}: {failure}"
                ) from None
            raise _Lost("platform_unreachable", str(exc)) from None
        if response.status_code in RETRYABLE_STATUS:
            raise _Lost("platform_unavailable", f"HTTP {response.status_code}")
        return self._answer(response)

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"code": f"http_{response.status_code}", "detail": response.text}
            raise PointsError(str(problem.get("code")), str(problem.get("detail")))
        if response.headers.get("content-type", "").startswith("text/csv"):
            return response.text
        return response.json()

    def report(self, reports: list[Report]) -> list[Decision]:
        body = json.dumps({"transactions": [report_json(r) for r in reports]}).encode()
        data = self._send("POST", f"{self._base}/transactions", body, "application/json")
        return [
            Decision(
                d["idempotency_key"],
                d["transaction_id"],
                Outcome(d["outcome"]),
                int(d["points"]),
                d.get("total_after"),
                replayed=bool(d.get("replayed")),
            )
            for d in data["decisions"]
        ]

    def feed(self, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        query = urlencode({"after": after, "limit": limit})
        data = self._send("GET", f"{self._base}/applications?{query}")
        applications: list[dict[str, Any]] = data["applications"]
        return applications

    def settlement(self, month: str, fmt: str = "json") -> Any:
        return self._send("GET", f"{self._base}/settlements/{month}?format={fmt}")

    def reconcile(self, month: str, records_csv: str) -> list[dict[str, Any]]:
        data = self._send(
            "POST", f"{self._base}/reconciliations/{month}", records_csv.encode(), "text/csv"
        )
        differences: list[dict[str, Any]] = data["differences"]
        return differences
