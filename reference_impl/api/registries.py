"""HTTP face of the emulated registries beside J-LIS: the health-insurance-use registry
(``/v1/registries/health-insurance``) and the public-fund-account registry
(``/v1/registries/public-fund``), each keyed by J-LIS's person reference.

Reading a registration is open, like J-LIS's certificate status (a person reference is an
opaque random token). Registering is done at the municipal window: staff only (role
``municipal-window``), audited with who did it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field

from mynahil.reference_impl.jlis import JlisServices
from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.registries import Registration, RegistrationBook, RegistryKind
from mynahil.reference_impl.registries.book import check_person_ref
from mynahil.reference_impl.staff import Role, StaffDirectory, StaffMember

from .problems import PROBLEM_RESPONSES
from .staff import require_staff, staff_directory

__all__ = ["router"]

router = APIRouter(prefix="/v1/registries", tags=["registries"], responses=PROBLEM_RESPONSES)
Slug = Literal["health-insurance", "public-fund"]


class RegistrationOut(BaseModel):
    kind: str = Field(description="health_insurance or public_fund_account")
    person_ref: str
    registered_on: date


class RegistrationIn(BaseModel):
    certificate_serial: str = Field(
        min_length=1, max_length=60, description="A user-authentication certificate's serial"
    )
    registered_on: date


def _book(request: Request, slug: str) -> RegistrationBook:
    books: dict[RegistryKind, RegistrationBook] | None = request.app.state.registries
    kind = RegistryKind.from_slug(slug)
    if books is None or kind not in books:
        raise MyKeyError("not_found", f"no {kind.label} runs here")
    return books[kind]


def _out(registration: Registration) -> RegistrationOut:
    return RegistrationOut(
        kind=registration.kind.value,
        person_ref=registration.person_ref,
        registered_on=registration.registered_on,
    )


@router.get("/{slug}/people/{person_ref}")
def registration(slug: Slug, person_ref: str, request: Request) -> RegistrationOut:
    """The person's registration (404 ``registration_not_found`` when there is none)."""
    try:
        check_person_ref(person_ref)
    except ValueError as exc:
        raise MyKeyError("invalid_request", str(exc)) from None
    found = _book(request, slug).registration(person_ref)
    if found is None:
        raise MyKeyError("registration_not_found", f"no registration for {person_ref}")
    return _out(found)


Window = Annotated[StaffMember, Depends(require_staff(Role.MUNICIPAL_WINDOW))]
Directory = Annotated[StaffDirectory, Depends(staff_directory)]


@router.post("/{slug}/registrations", status_code=status.HTTP_201_CREATED)
def register(
    slug: Slug, body: RegistrationIn, request: Request, member: Window, directory: Directory
) -> RegistrationOut:
    """Register the holder of a certificate (the municipal window, with the card): J-LIS
    names the person; a person registered before keeps their first registration."""
    jlis: JlisServices = request.app.state.jlis
    book = _book(request, slug)
    with directory.operation(member, "registry_registration") as (_uow, _now, note):
        note["details"].update(registry=slug, serial=body.certificate_serial[:64])
        if not body.certificate_serial.isdigit():
            raise MyKeyError("invalid_request", "certificate_serial is a decimal number")
        facts = jlis.holder_facts(int(body.certificate_serial))
        if facts is None:
            raise MyKeyError(
                "not_found", f"certificate {body.certificate_serial} was not issued by this J-LIS"
            )
        made = book.register(facts.person_ref, body.registered_on)
        note["details"].update(person_ref=made.person_ref, registered_on=str(made.registered_on))
        return _out(made)
