"""The audit log's hash chain: pure functions, shared by every store.

Each record's hash covers the previous record's hash and the record's own canonical JSON, so
changing, deleting or reordering any record breaks every hash after it. :func:`verify_chain`
names the first record that does not fit.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditRecord",
    "ChainBreak",
    "RefusalBudget",
    "bounded",
    "canonical",
    "canonical_json",
    "chain_hash",
    "verify_chain",
]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened: never a PIN, a password, a token or a My Number."""

    action: str
    outcome: str
    record_id: int | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: datetime
    action: str
    outcome: str
    record_id: int | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


def canonical_json(value: Mapping[str, Any] | None) -> str:
    """The audit log's one JSON encoding: keys sorted, no spaces, characters kept as they are.

    A record's ``details`` are stored in it and its hash covers it (:func:`canonical`), so the
    writer and the verifier must agree on it byte for byte: both come here.
    """
    return json.dumps(dict(value or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(seq: int, at: datetime, event: AuditEvent) -> bytes:
    """The bytes a record's hash covers."""
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "record_id": event.record_id,
        "details": dict(event.details or {}),
    }
    return canonical_json(body).encode()


def chain_hash(prev_hash: str, seq: int, at: datetime, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(seq, at, event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit record {self.seq}: {self.reason}"


def verify_chain(records: Iterable[AuditRecord]) -> tuple[int, ChainBreak | None]:
    """Walk the log in order: (records checked, the first break or None)."""
    prev, expected_seq, count = GENESIS, None, 0
    for r in records:
        if expected_seq is not None and r.seq != expected_seq:
            return count, ChainBreak(r.seq, f"expected record {expected_seq} next (one is missing)")
        if r.prev_hash != prev:
            return count, ChainBreak(r.seq, "does not link to the record before it")
        event = AuditEvent(r.action, r.outcome, r.record_id, r.details)
        if chain_hash(r.prev_hash, r.seq, r.at, event) != r.hash:
            return count, ChainBreak(r.seq, "its contents do not match its hash (altered)")
        prev, expected_seq, count = r.hash, r.seq + 1, count + 1
    return count, None


# --- what anonymous refusals may cost the log -------------------------------------------------


def bounded(text: str, limit: int = 256) -> dict[str, Any]:
    """A client-chosen string as an audit record keeps it: at most ``limit`` characters,
    with the full length and SHA-256 so two records can still be told apart or matched."""
    if len(text) <= limit:
        return {"text": text}
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return {"text": text[:limit], "length": len(text), "sha256": digest}


class RefusalBudget:
    """How many refusals of *unauthenticated* requests one source may write to the audit log.

    The log is a hash chain that is never pruned, so what an anonymous client can add must be
    bounded. Per source and window: the first ``per_window`` refusals are recorded (with
    bounded fields), the rest only counted; a count reaching ``summary_every`` is written as
    one record, and the next record from that source carries whatever was still uncounted.
    So records <= sources * (per_window + refusals / summary_every) per window; the number
    of refusals is never lost. At most ``max_sources`` sources are told apart; beyond that,
    new ones share one budget (a flood from many spoofed sources stays bounded too).
    Authenticated callers' refusals never pass through here: they keep their full trail.
    """

    def __init__(
        self,
        *,
        per_window: int = 10,
        window: timedelta = timedelta(minutes=1),
        summary_every: int = 1000,
        max_sources: int = 10_000,
    ) -> None:
        self.per_window = per_window
        self.window = window
        self.summary_every = summary_every
        self.max_sources = max_sources
        self._lock = threading.Lock()
        # source -> [window start, recorded in window, refusals not recorded since last record]
        self._sources: dict[str, list[Any]] = {}

    def admit(self, source: str, now: datetime) -> int | None:
        """None: count this refusal and write nothing. Otherwise write one record now, saying
        that the returned number of this source's refusals went unrecorded before it."""
        with self._lock:
            key = self._key(source, now)
            return self.step(self._sources.setdefault(key, [now, 0, 0]), now)

    def step(self, state: list[Any], now: datetime) -> int | None:
        """One refusal against one source's ``state`` [window start, recorded in window,
        refusals not recorded since last record], changed in place: :meth:`admit`'s answer.
        Every keeper of the budget (this one in memory, the database's) goes through it."""
        if now - state[0] >= self.window:
            state[0], state[1] = now, 0
        if state[1] < self.per_window or state[2] + 1 >= self.summary_every:
            state[1] += 1
            unrecorded, state[2] = state[2], 0
            return int(unrecorded)
        state[2] += 1
        return None

    def _key(self, source: str, now: datetime) -> str:
        if source in self._sources or len(self._sources) < self.max_sources:
            return source
        for old in [s for s, st in self._sources.items() if now - st[0] >= self.window]:
            if self._sources[old][2] == 0:  # nothing left to report for it
                del self._sources[old]
        return source if len(self._sources) < self.max_sources else "*"
