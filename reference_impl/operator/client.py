"""An operator's signed HTTP client for the platform's operator API."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from mynahil.tls import client_verify, tls_failure
from reference_impl.points import Decision, Outcome, PointsError, Report
from reference_impl.points.signing import Signer

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
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
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
                if last:
                    raise PlatformUnavailable("platform_unreachable", str(exc)) from None
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return self._answer(response)
                if last:
                    raise PlatformUnavailable(
                        "platform_unavailable",
                        f"HTTP {response.status_code} after {self.retries + 1} tries",
                    )
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

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
