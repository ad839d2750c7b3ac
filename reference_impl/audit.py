"""The audit log's hash chain: pure functions, shared by every store.

Each record's hash covers the previous record's hash and the record's own canonical JSON, so
changing, deleting or reordering any record breaks every hash after it. :func:`verify_chain`
names the first record that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["GENESIS", "AuditEvent", "AuditRecord", "ChainBreak", "chain_hash", "verify_chain"]

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


def canonical(seq: int, at: datetime, event: AuditEvent) -> bytes:
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "record_id": event.record_id,
        "details": dict(event.details or {}),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
