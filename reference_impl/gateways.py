"""How the platform reaches the outside: operators to verify accounts (over HTTP, signed, or
in-process) and the registries a bonus needs (in-process or over HTTP)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlsplit

import httpx

from mynahil.reference_impl.operator.books import OperatorBooks
from mynahil.reference_impl.points import Operator, OperatorUnreachable, RegistryUnreachable
from mynahil.reference_impl.points.signing import Signer
from mynahil.reference_impl.registries import (
    RegistrationBook,
    RegistrationFileError,
    RegistryKind,
)
from mynahil.tls import tls_failure

__all__ = ["HttpAccountCheck", "HttpRegistries", "LocalAccountCheck", "LocalRegistries"]


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


def _registry_kind(kind: str) -> RegistryKind | None:
    try:
        return RegistryKind(kind)
    except ValueError:
        return None


@dataclass
class LocalRegistries:
    """The registries living beside this platform's J-LIS (the ``Registrations`` port)."""

    books: Mapping[RegistryKind, RegistrationBook]

    def registered_on(self, kind: str, person_ref: str) -> date | None:
        registry_kind = _registry_kind(kind)
        book = self.books.get(registry_kind) if registry_kind is not None else None
        if book is None:
            return None
        try:
            found = book.registration(person_ref)
        except RegistrationFileError as exc:
            raise RegistryUnreachable(str(exc)) from None
        return None if found is None else found.registered_on


@dataclass
class HttpRegistries:
    """The registries over HTTP: ``GET {base_url}/v1/registries/{slug}/people/{person_ref}``
    answers the registration, or 404 ``registration_not_found`` when there is none (any
    other answer means the registry could not tell). An https URL's certificate is checked
    with ``verify``."""

    base_url: str
    timeout: float = 5.0
    verify: ssl.SSLContext | bool = True

    def registered_on(self, kind: str, person_ref: str) -> date | None:
        registry_kind = _registry_kind(kind)
        if registry_kind is None:
            return None
        url = (
            f"{self.base_url.rstrip('/')}/v1/registries/{registry_kind.slug}/people/"
            f"{quote(person_ref, safe='')}"
        )
        try:
            response = httpx.get(url, timeout=self.timeout, verify=self.verify)
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"{self.base_url}: {tls_failure(exc) or exc}") from None
        if response.status_code == 404 and _code(response) == "registration_not_found":
            return None
        if response.status_code != 200:
            raise RegistryUnreachable(f"HTTP {response.status_code} from {url}")
        try:
            return date.fromisoformat(response.json()["registered_on"])
        except (ValueError, KeyError, TypeError):
            raise RegistryUnreachable(f"{url} did not answer a registration") from None


def _code(response: httpx.Response) -> str | None:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None
