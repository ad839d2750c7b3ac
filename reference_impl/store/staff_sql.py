"""The staff table's half of a store transaction (:mod:`mynahil.reference_impl.staff`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from mynahil.reference_impl.staff import Role, StaffMember

from .driver import DriverStatement
from .tables import staff

__all__ = ["StaffStatements", "member_from_row"]

_ADD = DriverStatement(
    insert(staff)
    .values(
        name=bindparam("name"),
        role=bindparam("role"),
        token_hash=bindparam("token_hash"),
        created_at=bindparam("now"),
    )
    .returning(*staff.c)
)
_BY_TOKEN_HASH = DriverStatement(select(staff).where(staff.c.token_hash == bindparam("token")))
_ALL = DriverStatement(select(staff).order_by(staff.c.staff_id))
_DISABLE = DriverStatement(
    update(staff)
    .where(staff.c.staff_id == bindparam("sid"), staff.c.disabled_at.is_(None))
    .values(disabled_at=bindparam("now"))
)
_BY_ID = DriverStatement(select(staff).where(staff.c.staff_id == bindparam("sid")))


def member_from_row(row: Mapping[str, Any]) -> StaffMember:
    """A ``staff`` row (from :class:`.DriverStatement` or ``row._mapping``)."""
    return StaffMember(
        staff_id=int(row["staff_id"]),
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


class StaffStatements:
    """Mixed into the SQL unit of work: ``_conn`` is its connection."""

    _conn: Connection

    def add_staff(self, name: str, role: Role, token_hash: str, now: datetime) -> StaffMember:
        params = {"name": name, "role": role.value, "token_hash": token_hash, "now": now}
        row = _ADD.one(self._conn, params)
        assert row is not None  # INSERT … RETURNING returns the row it inserted
        return member_from_row(row)

    def staff_by_token_hash(self, token_hash: str) -> StaffMember | None:
        row = _BY_TOKEN_HASH.one(self._conn, {"token": token_hash})
        return member_from_row(row) if row is not None else None

    def all_staff(self) -> list[StaffMember]:
        return [member_from_row(row) for row in _ALL.rows(self._conn)]

    def disable_staff(self, staff_id: int, now: datetime) -> StaffMember | None:
        _DISABLE.run(self._conn, {"sid": staff_id, "now": now})
        row = _BY_ID.one(self._conn, {"sid": staff_id})
        return member_from_row(row) if row is not None else None
