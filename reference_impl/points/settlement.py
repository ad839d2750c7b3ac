"""Monthly settlement, reconciliation and the ledger's invariants: pure functions over rows.

- **Settlement**: what the state owes an operator for a month (JST) — every ledger movement
  decided in that month for the operator's services, with totals per service, as CSV and JSON.
- **Reconciliation**: an operator's own records (CSV: ``transaction_id,kind,amount,points``)
  against the platform's for the transactions of a month; every difference is listed.
- **Invariants**: what must hold whatever happened (retries, races, crashes).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

from mynahil.timezone import JST

from .campaign import Scheme
from .model import REPORT_TIMES, LedgerEntry, LedgerKind, StoredTransaction, TransactionKind
from .rules import points_for

__all__ = [
    "Difference",
    "OperatorRecord",
    "Settlement",
    "month_bounds",
    "parse_operator_records",
    "reconcile",
    "settle",
    "violations",
]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` (2000-01 to 2099-12) as a [start, end) pair of aware datetimes, in Japan
    time."""
    found = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", month, flags=re.ASCII)
    first_year, last_year = REPORT_TIMES[0].year, REPORT_TIMES[1].year - 1
    try:
        if found is None:
            raise ValueError
        year, number = int(found[1]), int(found[2])
        first = date(year, number, 1)
    except ValueError:
        raise ValueError(f"month must look like 2020-09, got {month!r}") from None
    if not first_year <= year <= last_year:
        raise ValueError(f"month must lie in {first_year}-01..{last_year}-12, got {month!r}")
    following = date(year + number // 12, number % 12 + 1, 1)
    return datetime.combine(first, time(), JST), datetime.combine(following, time(), JST)


@dataclass(frozen=True, slots=True)
class Settlement:
    operator_id: str
    month: str
    entries: list[LedgerEntry]

    def totals(self) -> dict[str, dict[str, int]]:
        """Per service: points granted, taken back, bonuses, and the net the state pays."""
        by_service: dict[str, dict[str, int]] = defaultdict(
            lambda: {"granted": 0, "taken_back": 0, "bonus": 0, "net": 0, "entries": 0}
        )
        for entry in self.entries:
            line = by_service[entry.service_id]
            if entry.kind is LedgerKind.GRANT:
                line["granted"] += entry.points
            elif entry.kind is LedgerKind.CLAWBACK:
                line["taken_back"] += -entry.points
            else:
                line["bonus"] += entry.points
            line["net"] += entry.points
            line["entries"] += 1
        return dict(sorted(by_service.items()))

    def to_json(self) -> str:
        return json.dumps(
            {
                "operator_id": self.operator_id,
                "month": self.month,
                "totals": self.totals(),
                "net": sum(e.points for e in self.entries),
                "entries": [
                    {
                        "entry_id": e.entry_id,
                        "at": e.at.isoformat(),
                        "service_id": e.service_id,
                        "account_id": e.account_id,
                        "transaction_id": e.transaction_id,
                        "campaign_id": e.campaign_id,
                        "kind": e.kind.value,
                        "points": e.points,
                    }
                    for e in self.entries
                ],
            },
            indent=2,
            ensure_ascii=False,
        )

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["entry_id", "at", "service_id", "account_id", "transaction_id", "campaign_id",
             "kind", "points"]
        )  # fmt: skip
        for e in self.entries:
            writer.writerow(
                [e.entry_id, e.at.isoformat(), e.service_id, e.account_id, e.transaction_id,
                 e.campaign_id, e.kind.value, e.points]
            )  # fmt: skip
        return out.getvalue()


def settle(operator_id: str, month: str, entries: Iterable[LedgerEntry]) -> Settlement:
    start, end = month_bounds(month)
    chosen = [e for e in entries if e.operator_id == operator_id and start <= e.at < end]
    return Settlement(operator_id, month, sorted(chosen, key=lambda e: e.entry_id or 0))


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """One line of an operator's own books."""

    transaction_id: str
    kind: str
    amount: int
    points: int


def parse_operator_records(text: str) -> list[OperatorRecord]:
    """CSV with a header ``transaction_id,kind,amount,points``; errors name the line."""
    reader = csv.DictReader(io.StringIO(text))
    needed = {"transaction_id", "kind", "amount", "points"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise ValueError(f"the records need a header with columns: {', '.join(sorted(needed))}")
    records = []
    for line, row in enumerate(reader, start=2):
        try:
            records.append(
                OperatorRecord(
                    row["transaction_id"].strip(),
                    TransactionKind(row["kind"].strip()).value,
                    _whole(row["amount"], "amount", negative=False),
                    _whole(row["points"], "points", negative=True),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"line {line}: {exc}") from None
    return records


def _whole(text: str | None, column: str, *, negative: bool) -> int:
    """A whole number exactly as written: ASCII digits (and a minus sign where allowed).
    ``int()`` alone would take ``" 1_000 "``, ``"+5"`` or other scripts' digits."""
    if text is None:
        raise ValueError(f"{column}: missing")
    pattern = r"-?[0-9]{1,12}" if negative else r"[0-9]{1,12}"
    if not re.fullmatch(pattern, text, flags=re.ASCII):
        kind = "a whole number" if negative else "a whole number of yen, 0 or more"
        raise ValueError(f"{column}: must be {kind} written in digits, got {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Difference:
    transaction_id: str
    problem: str  # missing_at_platform | missing_at_operator | kind | amount | points
    operator: str | None
    platform: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(
    theirs: Sequence[OperatorRecord], ours: Sequence[StoredTransaction]
) -> list[Difference]:
    """Every way an operator's records and the platform's disagree, by transaction ID."""
    mine = {t.transaction_id: t for t in ours}
    seen: set[str] = set()
    differences: list[Difference] = []
    for record in theirs:
        seen.add(record.transaction_id)
        stored = mine.get(record.transaction_id)
        if stored is None:
            differences.append(
                Difference(record.transaction_id, "missing_at_platform", record.kind, None)
            )
            continue
        for problem, at_operator, at_platform in (
            ("kind", record.kind, stored.kind.value),
            ("amount", str(record.amount), str(stored.amount)),
            ("points", str(record.points), str(stored.points)),
        ):
            if at_operator != at_platform:
                differences.append(
                    Difference(record.transaction_id, problem, at_operator, at_platform)
                )
    for transaction_id, stored in mine.items():
        if transaction_id not in seen:
            differences.append(
                Difference(transaction_id, "missing_at_operator", None, stored.kind.value)
            )
    return sorted(differences, key=lambda d: (d.transaction_id, d.problem))


def violations(
    scheme: Scheme,
    entries: Sequence[LedgerEntry],
    totals: Mapping[tuple[int, str], int],
    transactions: Sequence[StoredTransaction],
    people: Mapping[int, int],
) -> list[str]:
    """Broken invariants, in words; an empty list means the ledger is sound.

    ``totals`` are per (person, cap group); ``people`` maps each MyKey record to its person.

    1. Each person's total per cap group equals the sum of the ledger entries of all their
       MyKey IDs (revoked ones included).
    2. No total is negative or above its cap.
    3. A transaction's net points equal its ledger entries' sum and never exceed the rate's
       share of what is left after refunds; refunds never exceed the amount.
    4. No grant without an application (a granting transaction names a campaign and person).
    5. A refund and what it takes back are booked on its charge's service, account and
       person, so settlement (by account) and the ledger (by person) tell the same story.
    6. No person's ledger, over all their MyKey IDs, holds more than a cap: revoking an ID and
       issuing a new one, renewal or a reissued card never give a second cap.
    """
    problems: list[str] = []
    summed: dict[tuple[int, str], int] = defaultdict(int)
    for entry in entries:
        person = people.get(entry.record_id)
        if person is None:
            problems.append(f"ledger entry {entry.entry_id}: MyKey record {entry.record_id} "
                            "has no person")  # fmt: skip
            continue
        summed[(person, entry.cap_group)] += entry.points
    for key in sorted(set(summed) | set(totals)):
        cap = _cap(scheme, key[1])
        if summed.get(key, 0) != totals.get(key, 0):
            problems.append(
                f"person {key[0]} {key[1]}: total {totals.get(key, 0)} but ledger sums to "
                f"{summed.get(key, 0)}"
            )
        if not 0 <= totals.get(key, 0) <= cap:
            problems.append(
                f"person {key[0]} {key[1]}: total {totals.get(key, 0)} outside 0..{cap}"
            )
        if summed.get(key, 0) > cap:
            problems.append(
                f"person {key[0]} {key[1]}: over the cap: their MyKey IDs hold "
                f"{summed[key]} together, more than {cap}"
            )
    refund_of = {
        (t.operator_id, t.transaction_id): t.original_transaction_id
        for t in transactions
        if t.kind is TransactionKind.REFUND and t.original_transaction_id
    }
    charges = {
        (t.operator_id, t.transaction_id): t
        for t in transactions
        if t.kind is not TransactionKind.REFUND
    }
    per_charge: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        if entry.kind is LedgerKind.BONUS:
            continue
        charge = refund_of.get((entry.operator_id, entry.transaction_id), entry.transaction_id)
        per_charge[(entry.operator_id, charge)] += entry.points
        booked = charges.get((entry.operator_id, charge))
        if booked is not None and (entry.service_id, entry.account_id, entry.record_id) != (
            booked.service_id, booked.account_id, booked.record_id
        ):  # fmt: skip
            problems.append(
                f"ledger entry for {entry.transaction_id}: booked on {entry.service_id}/"
                f"{entry.account_id} (person {entry.record_id}), but charge {charge} is on "
                f"{booked.service_id}/{booked.account_id} (person {booked.record_id})"
            )
    for t in transactions:
        original = charges.get((t.operator_id, t.original_transaction_id or ""))
        refunded_here = t.kind is TransactionKind.REFUND and t.outcome.grants
        if (
            refunded_here
            and original is not None
            and (t.service_id, t.account_id) != (original.service_id, original.account_id)
        ):
            problems.append(
                f"refund {t.transaction_id}: reported on {t.service_id}/{t.account_id}, "
                f"but charge {original.transaction_id} is on "
                f"{original.service_id}/{original.account_id}"
            )
    for t in transactions:
        if t.kind is TransactionKind.REFUND:
            continue
        held = per_charge.get((t.operator_id, t.transaction_id), 0)
        if held != t.net_points:
            problems.append(
                f"transaction {t.transaction_id}: net {t.net_points} but ledger sums to {held}"
            )
        campaign = scheme.campaign(t.campaign_id or "")
        rate = campaign.spend.rate_percent if campaign else 0
        if t.refunded_amount > t.amount:
            problems.append(f"transaction {t.transaction_id}: refunded more than its amount")
        if not 0 <= t.net_points <= points_for(max(0, t.amount - t.refunded_amount), rate):
            problems.append(
                f"transaction {t.transaction_id}: holds {t.net_points} points for "
                f"{t.amount - t.refunded_amount} yen at {rate}%"
            )
        if t.net_points and (t.record_id is None or t.campaign_id is None):
            problems.append(f"transaction {t.transaction_id}: points without an application")
    return problems


def _cap(scheme: Scheme, cap_group: str) -> int:
    try:
        return scheme.cap(cap_group)
    except KeyError:
        return 0
