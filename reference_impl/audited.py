"""The audited unit of work: one transaction, one audit record, success or refusal.

Every state-changing operation of the platform runs in :func:`audited_operation`: the MyKey
rules, the point system's books and flows, and the staff's (the J-LIS hotline's and the
municipal window's suspensions, the help desk's stops and restarts). It asks of a store only a
transaction whose unit of work appends to the audit chain (:mod:`.audit`), so each part passes
its own store and gets its own unit of work back, typed, without a cast.

A refusal is a :class:`Refusal` (the MyKey platform's :class:`~.mykey.MyKeyError` and the point
system's errors are): its changes commit with its audit record (a consumed challenge stays
consumed, a failure is counted), unless it says ``discard_changes``; then the transaction rolls
back and the refusal is audited alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .audit import AuditEvent

__all__ = ["AuditingUnitOfWork", "Refusal", "Transactional", "audited_operation"]


class Refusal(Exception):
    """A refusal: ``code`` is stable (API problem type), the message is for people."""

    code: str = "refused"

    def __init__(self, code: str, message: str, *, discard_changes: bool = False) -> None:
        super().__init__(message)
        self.code = code
        # Most refusals commit what led to them (a consumed challenge, a failure count);
        # a refusal that found the store mid-race discards the transaction instead.
        self.discard_changes = discard_changes


class AuditingUnitOfWork(Protocol):
    """What the audited operation needs of a transaction: an append to the audit chain."""

    def audit(self, event: AuditEvent, now: datetime) -> None: ...


_Uow_co = TypeVar("_Uow_co", bound=AuditingUnitOfWork, covariant=True)


class Transactional(Protocol[_Uow_co]):
    def transaction(self) -> AbstractContextManager[_Uow_co]: ...


@contextmanager
def audited_operation(
    store: Transactional[_Uow_co], action: str, now: datetime
) -> Iterator[tuple[_Uow_co, datetime, dict[str, Any]]]:
    """A transaction of ``store`` that always ends with one audit record, success or refusal.

    The body fills ``note`` (record_id, details); a :class:`Refusal` it raises is audited and
    committed (consumed challenges stay consumed), then re-raised. Any other exception rolls
    the transaction back unaudited.
    """
    note: dict[str, Any] = {"record_id": None, "details": {}}
    refusal: Refusal | None = None
    try:
        with store.transaction() as uow:
            try:
                yield uow, now, note
                outcome = "ok"
            except Refusal as exc:
                if exc.discard_changes:
                    raise  # roll the transaction back, log the refusal on its own below
                refusal, outcome = exc, f"refused:{exc.code}"
            uow.audit(AuditEvent(action, outcome, note["record_id"], note["details"]), now)
    except Refusal as discarded:
        with store.transaction() as uow:
            event = AuditEvent(action, f"refused:{discarded.code}", None, note["details"])
            uow.audit(event, now)
        raise
    if refusal is not None:
        raise refusal
