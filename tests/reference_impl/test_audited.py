"""The one audited unit of work (issue 16): any store whose transaction audits, one record per
operation, a refusal's changes committed unless it says discard, other errors unaudited."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from mynahil.reference_impl.audit import AuditEvent
from mynahil.reference_impl.audited import Refusal, audited_operation
from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.points.errors import PointsError

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


class _Books:
    """A unit of work of a store that is not the MyKey platform's: a list of entries."""

    def __init__(self, entries: list[str], audit: list[AuditEvent]) -> None:
        self.entries, self._audit = entries, audit

    def audit(self, event: AuditEvent, now: datetime) -> None:
        assert now == NOW
        self._audit.append(event)


class _Store:
    """Commits a transaction's entries and audit records only when its block ends cleanly."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.audit: list[AuditEvent] = []

    @contextmanager
    def transaction(self) -> Iterator[_Books]:
        uow = _Books(list(self.entries), list(self.audit))
        yield uow
        self.entries, self.audit = uow.entries, uow._audit


def _add(store: _Store, entry: str, refusal: Exception | None = None) -> None:
    """One operation that adds ``entry`` and notes it, then raises ``refusal`` if given."""
    with audited_operation(store, "entry_added", NOW) as (uow, now, note):
        uow.entries.append(entry)  # typed as _Books: the store's own unit of work, no cast
        note["record_id"], note["details"]["entry"] = 7, entry
        assert now == NOW
        if refusal is not None:
            raise refusal


def test_a_success_commits_with_one_record_of_what_the_body_noted() -> None:
    store = _Store()
    _add(store, "a")
    assert store.entries == ["a"]
    assert store.audit == [AuditEvent("entry_added", "ok", 7, {"entry": "a"})]


@pytest.mark.parametrize("refusal", [Refusal, MyKeyError, PointsError])
def test_a_refusal_commits_its_changes_and_its_record_then_is_raised(
    refusal: type[Refusal],
) -> None:
    store = _Store()
    with pytest.raises(refusal):
        _add(store, "consumed", refusal("entry_refused", "no"))
    assert store.entries == ["consumed"]
    assert store.audit == [
        AuditEvent("entry_added", "refused:entry_refused", 7, {"entry": "consumed"})
    ]


def test_a_refusal_that_says_discard_rolls_back_and_is_audited_alone() -> None:
    store = _Store()
    with pytest.raises(MyKeyError):
        _add(store, "raced", MyKeyError("busy", "try again", discard_changes=True))
    assert store.entries == []
    assert store.audit == [AuditEvent("entry_added", "refused:busy", None, {"entry": "raced"})]


def test_an_error_that_is_no_refusal_rolls_back_unaudited() -> None:
    store = _Store()
    with pytest.raises(LookupError):
        _add(store, "half", LookupError("no such entry"))
    assert (store.entries, store.audit) == ([], [])
