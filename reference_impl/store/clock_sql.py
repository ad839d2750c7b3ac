"""The business clock under ``mynahil serve --as-of``, kept in the database so every worker and
instance on it reads the same business time (issue 17).

A server started with ``--as-of`` asks :func:`shared_clock`: when the database's clock was
started at that same moment it joins it (same offset from the wall clock, whenever this
process started); otherwise it starts the database's clock there, now. So two instances
started seconds apart with the same ``--as-of`` agree to the microsecond, a restarted one
continues where the others are, and ``--as-of`` with another date starts the replay again
(instances still running keep their clock until they are restarted too).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update

from .driver import DriverStatement, dialect_insert
from .engine import unavailable_as_such
from .sql import SqlStore
from .tables import business_clock

__all__ = ["shared_clock"]

_START = DriverStatement(
    lambda dialect: (
        dialect_insert(dialect, business_clock)
        .values(id=1, as_of=bindparam("as_of"), wall_at=bindparam("now"))
        .on_conflict_do_nothing()
    )
)
_READ = DriverStatement(
    select(business_clock.c.as_of, business_clock.c.wall_at)
    .where(business_clock.c.id == 1)
    .with_for_update()
)
_RESTART = DriverStatement(
    update(business_clock)
    .where(business_clock.c.id == 1)
    .values(as_of=bindparam("as_of"), wall_at=bindparam("now"))
)


def shared_clock(
    store: SqlStore, as_of: datetime, *, wall: Callable[[], datetime] | None = None
) -> Callable[[], datetime]:
    """A clock reading the database's business time, started at ``as_of`` (see the module)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of needs a time zone")
    read_wall = wall or (lambda: datetime.now(UTC))
    with unavailable_as_such(), store.engine.begin() as connection:
        now = read_wall()
        _START.run(connection, {"as_of": as_of, "now": now})
        row = _READ.one(connection)
        assert row is not None  # inserted, or there already
        if row["as_of"] != as_of:
            _RESTART.run(connection, {"as_of": as_of, "now": now})
            offset = as_of - now
        else:
            offset = row["as_of"] - row["wall_at"]
    return lambda: read_wall() + offset
