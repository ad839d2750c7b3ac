"""The budget of anonymous refusals (:class:`reference_impl.audit.RefusalBudget`) in the
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

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from reference_impl.audit import RefusalBudget

from .sql import _unavailable_as_such
from .tables import refusal_budget

__all__ = ["SqlRefusalBudget"]

_LONGEST: Final = 128  # the column's width


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
        build = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._insert = build(refusal_budget).on_conflict_do_nothing()

    def _row_key(self, source: str) -> str:
        key = f"{self.scope}:{source}"
        if len(key) <= _LONGEST:
            return key
        digest = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        return f"{self.scope}:sha256:{digest}"

    def admit(self, source: str, now: datetime) -> int | None:
        with _unavailable_as_such(), self._engine.begin() as connection:
            key = self._row_key(source)
            state = self._locked(connection, key)
            if state is None:
                key = self._room_for(connection, key, now)
                connection.execute(
                    self._insert.values(source=key, window_start=now, recorded=0, unrecorded=0)
                )
                state = self._locked(connection, key)
                assert state is not None  # inserted, or there already
            answer = self.step(state, now)
            connection.execute(
                update(refusal_budget)
                .where(refusal_budget.c.source == key)
                .values(window_start=state[0], recorded=state[1], unrecorded=state[2])
            )
            return answer

    def _locked(self, connection: Connection, key: str) -> list[object] | None:
        row = connection.execute(
            select(
                refusal_budget.c.window_start, refusal_budget.c.recorded,
                refusal_budget.c.unrecorded,
            ).where(refusal_budget.c.source == key).with_for_update()
        ).first()  # fmt: skip
        return None if row is None else [row.window_start, row.recorded, row.unrecorded]

    def _room_for(self, connection: Connection, key: str, now: datetime) -> str:
        """``key``, or the shared ``<scope>:*`` when this scope already tells apart
        ``max_sources`` sources (after forgetting those with nothing left to report)."""
        mine = refusal_budget.c.source.startswith(f"{self.scope}:", autoescape=True)
        count = select(func.count()).select_from(refusal_budget).where(mine)
        if connection.execute(count).scalar_one() < self.max_sources:
            return key
        connection.execute(
            delete(refusal_budget).where(
                mine,
                refusal_budget.c.window_start <= now - self.window,
                refusal_budget.c.unrecorded == 0,
            )
        )
        if connection.execute(count).scalar_one() < self.max_sources:
            return key
        return f"{self.scope}:*"
