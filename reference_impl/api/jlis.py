"""HTTP face of the emulated J-LIS: CA certificates, CRLs, OCSP, status, linkage and the
holder's facts (person reference, card-application date)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from mynahil.reference_impl.jlis import JlisServices
from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.staff import Role, StaffDirectory, StaffMember

from .problems import PROBLEM_RESPONSES
from .staff import require_staff, staff_directory

__all__ = ["router"]

router = APIRouter(prefix="/v1/jlis", tags=["J-LIS"], responses=PROBLEM_RESPONSES)
Kind = Literal["auth", "sign"]


async def services(request: Request) -> JlisServices:
    jlis: JlisServices = request.app.state.jlis
    return jlis


Services = Annotated[JlisServices, Depends(services)]


class CertificateState(BaseModel):
    serial: str
    status: str
    reason: str | None = None
    predecessor: str | None = None
    successor: str | None = None
    person_ref: str | None = None
    """Opaque reference to the person, the same across renewals and reissued cards."""
    card_applied_on: date | None = None
    """The day J-LIS received the application for the card holding this certificate."""
    not_before: datetime | None = None
    not_after: datetime | None = None
    """The certificate's validity as J-LIS recorded it (a renewal's, before anyone saw it)."""


@router.get("/ca/{kind}", response_class=Response)
def ca_certificate(kind: Kind, jlis: Services) -> Response:
    """The root certificate (DER) for user-authentication or signing certificates."""
    _key, cert = jlis.ca.signer(kind)
    from cryptography.hazmat.primitives import serialization

    return Response(
        cert.public_bytes(serialization.Encoding.DER), media_type="application/pkix-cert"
    )


@router.get("/crl/{kind}", response_class=Response)
def crl(kind: Kind, jlis: Services) -> Response:
    """A freshly signed CRL (DER)."""
    return Response(jlis.crl(kind), media_type="application/pkix-crl")


@router.post("/ocsp", response_class=Response)
async def ocsp(request: Request, jlis: Services) -> Response:
    """RFC 6960 over HTTP POST: a DER OCSPRequest in, a signed OCSPResponse out."""
    body = await request.body()
    return Response(jlis.ocsp_response(body[:65536]), media_type="application/ocsp-response")


def _serial(text: str) -> int:
    # ASCII digits only: str.isdigit() also says yes to superscripts, which int() refuses,
    # and to other scripts' digits, which int() reads as another spelling of a number.
    if not (text.isascii() and text.isdigit()) or len(text) > 60:
        raise MyKeyError("invalid_request", "a serial is a decimal number")
    return int(text)


@router.get("/certificates/{serial}")
def certificate(serial: str, jlis: Services) -> CertificateState:
    """Status, old→new linkage and holder facts of one certificate, as relying parties query
    it (an unknown serial: status ``unknown`` and no facts)."""
    number = _serial(serial)
    entry = jlis.registry.entry(number)
    predecessor = jlis.registry.predecessor(number)
    successor = jlis.registry.successor(number)
    facts = jlis.holder_facts(number)
    return CertificateState(
        serial=serial,
        status=jlis.status(number).value,
        reason=entry.reason if entry else None,
        predecessor=str(predecessor) if predecessor is not None else None,
        successor=str(successor) if successor is not None else None,
        person_ref=facts.person_ref if facts else None,
        card_applied_on=facts.card_applied_on if facts else None,
        not_before=entry.not_before if entry else None,
        not_after=entry.not_after if entry else None,
    )


Hotline = Annotated[StaffMember, Depends(require_staff(Role.JLIS_HOTLINE, Role.MUNICIPAL_WINDOW))]
Directory = Annotated[StaffDirectory, Depends(staff_directory)]


@router.post("/certificates/{serial}/suspension", status_code=204)
def suspend(serial: str, jlis: Services, member: Hotline, directory: Directory) -> None:
    """The lost-card hotline (emulation): revoke a certificate now.

    Staff only (roles ``jlis-hotline``, ``municipal-window``: ``Authorization: Bearer`` with a
    token from ``mynahil staff add``); audited as ``jlis_suspension`` with who did it.
    """
    # The revocation is made only after the audit record committed: a store that cannot
    # commit (busy, full) leaves the certificate as it was. (One write transaction at a
    # time: on SQLite the registry's and the store's would wait for each other.)
    with directory.operation(member, "jlis_suspension") as (_uow, now, note):
        note["details"]["serial"] = serial[:64]
        number = _serial(serial)
        if jlis.registry.entry(number) is None:
            raise MyKeyError("not_found", f"certificate {serial} was not issued by this J-LIS")
    jlis.registry.revoke(number, "lost", now)
