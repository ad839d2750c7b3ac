"""The staff table's half of a store transaction (:mod:`reference_impl.staff`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from reference_impl.staff import Role, StaffMember

from .tables import staff

__all__ = ["StaffStatements"]


def _member(row: Row[Any]) -> StaffMember:
    return StaffMember(
        staff_id=int(row.staff_id),
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


class StaffStatements:
    """Mixed into the SQL unit of work: ``_conn`` is its connection."""

    _conn: Connection

    def add_staff(self, name: str, role: Role, token_hash: str, now: datetime) -> StaffMember:
        row = self._conn.execute(
            insert(staff)
            .values(name=name, role=role.value, token_hash=token_hash, created_at=now)
            .returning(*staff.c)
        ).one()
        return _member(row)

    def staff_by_token_hash(self, token_hash: str) -> StaffMember | None:
        row = self._conn.execute(
            select(staff).where(staff.c.token_hash == token_hash)
        ).one_or_none()
        return _member(row) if row is not None else None

    def all_staff(self) -> list[StaffMember]:
        rows = self._conn.execute(select(staff).order_by(staff.c.staff_id)).all()
        return [_member(row) for row in rows]

    def disable_staff(self, staff_id: int, now: datetime) -> StaffMember | None:
        self._conn.execute(
            update(staff)
            .where(staff.c.staff_id == staff_id, staff.c.disabled_at.is_(None))
            .values(disabled_at=now)
        )
        row = self._conn.execute(select(staff).where(staff.c.staff_id == staff_id)).one_or_none()
        return _member(row) if row is not None else None
