"""The MyKey platform's help desk (seed 004): a holder whose MyKey ID or page password may have
leaked calls it, and the *platform* stops that MyKey ID: no login (card or password), no
application, no points, until the help desk restarts it after investigating the logs.

Only staff in role ``helpdesk`` (:mod:`mynahil.reference_impl.staff`) may stop or restart an ID;
each action runs in a staff operation, so its audit record names who did it, and it must say why
(``reason``, kept in the same record). What a stopped ID means for the holder is decided where
the holder acts (:func:`mynahil.reference_impl.mykey.service.stopped_error`, the point system's
``mykey_id_stopped`` outcome).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.mykey.ids import InvalidMyKeyId, parse_mykey_id
from mynahil.reference_impl.mykey.model import MyKeyRecord, MyKeyStatus
from mynahil.reference_impl.staff import Role, StaffDirectory, StaffMember

__all__ = ["MAX_REASON_LENGTH", "HelpDesk"]

MAX_REASON_LENGTH: Final = 500


def _reason(reason: str) -> str:
    cleaned = reason.strip()
    if not 1 <= len(cleaned) <= MAX_REASON_LENGTH or not cleaned.isprintable():
        raise MyKeyError(
            "invalid_request",
            f"reason: say why, in 1 to {MAX_REASON_LENGTH} printable characters "
            "(it is kept in the audit log)",
        )
    return cleaned


class HelpDesk:
    def __init__(self, staff: StaffDirectory) -> None:
        self.staff = staff

    def stop(self, member: StaffMember, mykey_id: str, reason: str) -> MyKeyRecord:
        """Stop an active MyKey ID; its sessions end at once."""
        return self._set(member, "helpdesk_stop", mykey_id, reason, MyKeyStatus.STOPPED)

    def restart(self, member: StaffMember, mykey_id: str, reason: str) -> MyKeyRecord:
        """Let a stopped MyKey ID be used again."""
        return self._set(member, "helpdesk_restart", mykey_id, reason, MyKeyStatus.ACTIVE)

    def _set(
        self, member: StaffMember, action: str, mykey_id: str, reason: str, to: MyKeyStatus
    ) -> MyKeyRecord:
        with self.staff.operation(member, action) as (uow, _now, note):
            note["details"].update(mykey_id=mykey_id[:32], reason=reason[:MAX_REASON_LENGTH])
            if member.role is not Role.HELPDESK:
                raise MyKeyError("staff_forbidden", "this needs a staff member in role helpdesk")
            why = _reason(reason)
            try:
                canonical = parse_mykey_id(mykey_id)
            except InvalidMyKeyId as exc:
                raise MyKeyError("mykey_id_invalid", f"mykey_id: {exc}") from None
            found = uow.record_by_mykey_id(canonical)
            record = uow.record(found.record_id, lock=True) if found else None
            if record is None:
                raise MyKeyError("mykey_not_found", f"no MyKey ID {canonical}")
            note["record_id"] = record.record_id
            note["details"].update(mykey_id=canonical, reason=why)
            if record.status is MyKeyStatus.REVOKED:
                raise MyKeyError("mykey_revoked", f"{canonical} was revoked by its holder")
            if record.status is to:
                raise MyKeyError(
                    "mykey_id_already_" + to.value,
                    f"{canonical} is {to.value} already",
                )
            changed = replace(record, status=to)
            uow.update_record(changed)
            if to is MyKeyStatus.STOPPED:
                uow.end_sessions(record.record_id)
            return changed
