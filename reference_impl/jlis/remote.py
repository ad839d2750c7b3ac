"""J-LIS as a relying party in another process reaches it: over HTTP.

:class:`RemoteJlis` is a :class:`~mynahil.reference_impl.mykey.ports.CertificateAuthority` built on
the J-LIS routes (``/v1/jlis/ca/auth`` and ``/v1/jlis/certificates/{serial}``), so a platform
can trust a J-LIS it does not host.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx

from mynahil.reference_impl.mykey.ports import CertificateStatus, HolderFacts, Replacement

__all__ = ["JlisUnreachable", "RemoteJlis"]


class JlisUnreachable(RuntimeError):
    """J-LIS did not answer, or answered something that is not its API."""


class RemoteJlis:
    """A CertificateAuthority over HTTP. ``http`` is an httpx client whose base URL is J-LIS's
    (a ``fastapi.testclient.TestClient`` works too)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self._anchor: bytes | None = None

    @classmethod
    def connect(cls, base_url: str, timeout: float = 10.0) -> RemoteJlis:
        return cls(httpx.Client(base_url=base_url, timeout=timeout))

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            raise JlisUnreachable(f"J-LIS at {self.http.base_url} did not answer: {exc}") from None
        if response.status_code != 200:
            raise JlisUnreachable(f"HTTP {response.status_code} from J-LIS for {path}")
        return response

    def _certificate(self, serial: int) -> dict[str, Any]:
        body = self._get(f"/v1/jlis/certificates/{serial}").json()
        if not isinstance(body, dict) or "status" not in body:
            raise JlisUnreachable(f"J-LIS's answer for certificate {serial} has no status")
        return body

    @property
    def auth_ca_certificate(self) -> bytes:
        """The user-authentication root (DER), fetched once."""
        if self._anchor is None:
            self._anchor = self._get("/v1/jlis/ca/auth").content
        return self._anchor

    def status(self, serial: int) -> CertificateStatus:
        try:
            return CertificateStatus(self._certificate(serial)["status"])
        except ValueError:
            raise JlisUnreachable(f"J-LIS sent an unknown status for {serial}") from None

    def prefetch_status(self, serial: int) -> None:
        """Nothing: over HTTP the question goes when it is asked."""

    def predecessor(self, serial: int) -> int | None:
        previous = self._certificate(serial).get("predecessor")
        return None if previous is None else int(previous)

    def holder_facts(self, serial: int) -> HolderFacts | None:
        body = self._certificate(serial)
        person, applied = body.get("person_ref"), body.get("card_applied_on")
        if person is None or applied is None:
            return None
        try:
            return HolderFacts(str(person), date.fromisoformat(applied))
        except (TypeError, ValueError):
            raise JlisUnreachable(f"J-LIS sent a bad card_applied_on for {serial}") from None

    def replacement(self, serial: int) -> Replacement | None:
        successor = self._certificate(serial).get("successor")
        if successor is None:
            return None
        body = self._certificate(int(successor))
        start, end = body.get("not_before"), body.get("not_after")
        if start is None or end is None:
            return None
        try:
            return Replacement(
                int(successor), datetime.fromisoformat(start), datetime.fromisoformat(end)
            )
        except (TypeError, ValueError):
            raise JlisUnreachable(f"J-LIS sent a bad validity for {successor}") from None
