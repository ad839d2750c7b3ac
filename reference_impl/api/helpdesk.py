"""HTTP face of the MyKey help desk: stop and restart a MyKey ID (staff role ``helpdesk``,
``Authorization: Bearer <token>`` from ``mynahil staff add --role helpdesk``). Translation only:
the rules are :mod:`mynahil.reference_impl.helpdesk`'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mynahil.reference_impl.helpdesk import MAX_REASON_LENGTH, HelpDesk
from mynahil.reference_impl.mykey.model import MyKeyRecord
from mynahil.reference_impl.staff import Role, StaffDirectory, StaffMember

from .problems import PROBLEM_RESPONSES
from .staff import require_staff, staff_directory

__all__ = ["router"]

router = APIRouter(prefix="/v1/helpdesk", tags=["Help desk"], responses=PROBLEM_RESPONSES)

Agent = Annotated[StaffMember, Depends(require_staff(Role.HELPDESK))]
Directory = Annotated[StaffDirectory, Depends(staff_directory)]


class Why(BaseModel):
    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON_LENGTH,
        description="why (kept in the audit log with who did it)",
    )


class MyKeyState(BaseModel):
    mykey_id: str
    status: str


def _state(record: MyKeyRecord) -> MyKeyState:
    return MyKeyState(mykey_id=record.mykey_id, status=record.status.value)


@router.post("/mykeys/{mykey_id}/stop")
def stop(mykey_id: str, body: Why, agent: Agent, directory: Directory) -> MyKeyState:
    """Stop a MyKey ID that may have leaked: no login (card or password), no application, no
    points (reports get ``mykey_id_stopped``) until it is restarted; its sessions end now."""
    return _state(HelpDesk(directory).stop(agent, mykey_id, body.reason))


@router.post("/mykeys/{mykey_id}/restart")
def restart(mykey_id: str, body: Why, agent: Agent, directory: Directory) -> MyKeyState:
    """Let a stopped MyKey ID be used again, after the investigation."""
    return _state(HelpDesk(directory).restart(agent, mykey_id, body.reason))
