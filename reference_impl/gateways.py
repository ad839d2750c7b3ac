"""How the platform reaches operators to verify accounts: over HTTP (signed) or in-process."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from mynahil.tls import tls_failure
from reference_impl.operator.books import OperatorBooks
from reference_impl.points import Operator, OperatorUnreachable
from reference_impl.points.signing import Signer

__all__ = ["HttpAccountCheck", "LocalAccountCheck"]


@dataclass
class HttpAccountCheck:
    """POSTs ``{service_id, account_id, security_code}`` to the operator's verify URL, signed
    by the platform; the operator answers ``{"valid": bool}``. An https verify URL's
    certificate is checked with ``verify`` (a context trusting the operators' CA, or True)."""

    signer: Signer
    timeout: float = 5.0
    verify: ssl.SSLContext | bool = True

    def verify_account(
        self, operator: Operator, service_id: str, account_id: str, security_code: str
    ) -> bool:
        if not operator.verify_url:
            raise OperatorUnreachable(f"{operator.operator_id} has no verify URL registered")
        body = json.dumps(
            {"service_id": service_id, "account_id": account_id, "security_code": security_code}
        ).encode()
        parts = urlsplit(operator.verify_url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = self.signer.headers("POST", target, body)
        headers["Content-Type"] = "application/json"
        try:
            response = httpx.post(
                operator.verify_url,
                content=body,
                headers=headers,
                timeout=self.timeout,
                verify=self.verify,
            )
        except httpx.HTTPError as exc:
            raise OperatorUnreachable(f"{operator.verify_url}: {tls_failure(exc) or exc}") from None
        if response.status_code != 200:
            raise OperatorUnreachable(f"HTTP {response.status_code} from {operator.verify_url}")
        try:
            return bool(response.json()["valid"])
        except (ValueError, KeyError, TypeError):
            raise OperatorUnreachable('the operator\'s answer is not {"valid": bool}') from None


@dataclass
class LocalAccountCheck:
    """Operators living in this process (tests, benchmarks, the in-process demo)."""

    books: Mapping[str, OperatorBooks]

    def verify_account(
        self, operator: Operator, service_id: str, account_id: str, security_code: str
    ) -> bool:
        books = self.books.get(operator.operator_id)
        if books is None:
            raise OperatorUnreachable(f"{operator.operator_id} is not running here")
        return books.verify(service_id, account_id, security_code)
