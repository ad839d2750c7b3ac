"""The budget of anonymous refusals (:class:`mynahil.reference_impl.audit.RefusalBudget`) in the
database, so one source flooding several workers or instances gets one budget, not one per
process (issue 17).

Each :meth:`SqlRefusalBudget.admit` is one short transaction that locks the source's row
(``SELECT … FOR UPDATE``; on SQLite the write lock) and applies the budget's own step to it,
so the answers are exactly those of the in-memory budget fed the same refusals in commit
order. Sources beyond ``max_sources`` share the row ``<scope>:*``; on PostgreSQL, processes
adding new sources at the same moment may each add one more before they see the bound.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from mynahil.reference_impl.audit import RefusalBudget

from .driver import DriverStatement, dialect_insert
from .engine import unavailable_as_such
from .tables import refusal_budget

__all__ = ["SqlRefusalBudget"]

_LONGEST: Final = 128  # the column's width
_B = refusal_budget.c
_LOCKED = DriverStatement(
    select(_B.window_start, _B.recorded, _B.unrecorded)
    .where(_B.source == bindparam("key"))
    .with_for_update()
)
_ADD = DriverStatement(
    lambda dialect: (
        dialect_insert(dialect, refusal_budget)
        .values(source=bindparam("key"), window_start=bindparam("now"), recorded=0, unrecorded=0)
        .on_conflict_do_nothing()
    )
)
_SAVE = DriverStatement(
    update(refusal_budget)
    .where(_B.source == bindparam("key"))
    .values(
        window_start=bindparam("window_start"),
        recorded=bindparam("recorded"),
        unrecorded=bindparam("unrecorded"),
    )
)


class SqlRefusalBudget(RefusalBudget):
    """:class:`RefusalBudget` kept in ``refusal_budget``; ``scope`` keeps the budgets of
    different services apart in the one table ("mykey", "points")."""

    def __init__(
        self,
        engine: Engine,
        scope: str,
        *,
        per_window: int = 10,
        window: timedelta = timedelta(minutes=1),
        summary_every: int = 1000,
        max_sources: int = 10_000,
    ) -> None:
        super().__init__(
            per_window=per_window, window=window, summary_every=summary_every,
            max_sources=max_sources,
        )  # fmt: skip
        self._engine = engine
        self.scope = scope
        # This scope's rows: statements of its own, compiled once for the budget's lifetime.
        mine = _B.source.startswith(f"{scope}:", autoescape=True)
        self._count = DriverStatement(select(func.count()).select_from(refusal_budget).where(mine))
        self._forget = DriverStatement(
            delete(refusal_budget).where(
                mine, _B.window_start <= bindparam("before"), _B.unrecorded == 0
            )
        )

    def _row_key(self, source: str) -> str:
        key = f"{self.scope}:{source}"
        if len(key) <= _LONGEST:
            return key
        digest = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        return f"{self.scope}:sha256:{digest}"

    def admit(self, source: str, now: datetime) -> int | None:
        with unavailable_as_such(), self._engine.begin() as connection:
            key = self._row_key(source)
            state = self._locked(connection, key)
            if state is None:
                key = self._room_for(connection, key, now)
                _ADD.run(connection, {"key": key, "now": now})
                state = self._locked(connection, key)
                assert state is not None  # inserted, or there already
            answer = self.step(state, now)
            saved = dict(zip(("window_start", "recorded", "unrecorded"), state, strict=True))
            _SAVE.run(connection, {"key": key, **saved})
            return answer

    def _locked(self, connection: Connection, key: str) -> list[object] | None:
        row = _LOCKED.one(connection, {"key": key})
        return None if row is None else [row["window_start"], row["recorded"], row["unrecorded"]]

    def _room_for(self, connection: Connection, key: str, now: datetime) -> str:
        """``key``, or the shared ``<scope>:*`` when this scope already tells apart
        ``max_sources`` sources (after forgetting those with nothing left to report)."""
        if self._count.scalar(connection) < self.max_sources:
            return key
        self._forget.run(connection, {"before": now - self.window})
        if self._count.scalar(connection) < self.max_sources:
            return key
        return f"{self.scope}:*"
