"""Deciding one batch of operator reports, free of I/O (SPEC.md "The points").

The service reads what a batch needs under its locks (applications, the people's cap totals,
earlier transactions, certificates) and hands it to a :class:`Batch`; the batch decides every
report in order with :mod:`.rules` and collects what to write: new transaction rows, refunds
of earlier ones, the totals it changed and the ledger entries. Nothing here touches a store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from msgspec.structs import replace

from mynahil.reference_impl.mykey.model import MyKeyStatus

from .campaign import Campaign, Scheme
from .errors import PointsError
from .model import (
    REPORT_TIMES,
    Application,
    Decision,
    LedgerEntry,
    LedgerKind,
    Outcome,
    Report,
    StoredTransaction,
    TransactionKind,
)
from .ports import CapKey
from .rules import (
    CertificatePeriod,
    Eligibility,
    certificate_valid_at,
    decide_grant,
    eligibility,
    is_future_dated,
    refund_clawback,
)

__all__ = ["MAX_BATCH", "Batch", "check_batch", "report_digest"]

MAX_BATCH = 5000


def report_digest(report: Report) -> str:
    """What an idempotency key promises: the same key always carries the same report."""
    fields = (
        report.transaction_id,
        report.service_id,
        report.account_id,
        report.kind.value,
        str(report.amount),
        report.occurred_at.astimezone(UTC).isoformat(),
        report.original_transaction_id or "",
    )
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def check_batch(reports: Sequence[Report]) -> None:
    """Refuse a batch of the wrong size or with a malformed report (the first one named)."""
    if not 1 <= len(reports) <= MAX_BATCH:
        raise PointsError("invalid_request", f"send 1 to {MAX_BATCH} transactions per batch")
    for index, report in enumerate(reports):
        _check_report(index, report)


def _check_report(index: int, report: Report) -> None:
    where = f"transactions[{index}]"
    if not 1 <= len(report.idempotency_key) <= 128:
        raise PointsError("invalid_request", f"{where}.idempotency_key: 1 to 128 characters")
    if not 1 <= len(report.transaction_id) <= 128:
        raise PointsError("invalid_request", f"{where}.transaction_id: 1 to 128 characters")
    if report.amount <= 0:
        raise PointsError("invalid_request", f"{where}.amount: must be a positive yen amount")
    if report.occurred_at.tzinfo is None or report.occurred_at.utcoffset() is None:
        raise PointsError("invalid_request", f"{where}.occurred_at: give the time zone")
    if not REPORT_TIMES[0] <= report.occurred_at < REPORT_TIMES[1]:
        raise PointsError(
            "invalid_request",
            f"{where}.occurred_at: must lie from {REPORT_TIMES[0].isoformat()} to before "
            f"{REPORT_TIMES[1].isoformat()}",
        )
    refund = report.kind is TransactionKind.REFUND
    if refund != (report.original_transaction_id is not None):
        raise PointsError(
            "invalid_request",
            f"{where}.original_transaction_id: required for refunds and only for refunds",
        )


class Batch:
    """Deciding one batch against locked totals; collects what to write."""

    def __init__(
        self,
        scheme: Scheme,
        operator_id: str,
        now: datetime,
        applications: Mapping[tuple[str, str], list[Application]],
        current: Mapping[int, tuple[int, MyKeyStatus]],
        people: dict[int, int],
        totals: dict[CapKey, int],
        originals: dict[str, StoredTransaction],
        certificates: Mapping[int, list[CertificatePeriod | None]],
    ) -> None:
        self.scheme = scheme
        self.certificates = certificates
        self.operator_id = operator_id
        self.now = now
        self.applications = applications
        self.current = current  # person -> (their MyKey record that is not revoked, status)
        self.people = people  # MyKey record -> person
        self.totals = totals
        self.originals = originals
        self.new_rows: dict[str, StoredTransaction] = {}  # by idempotency key
        self.refunded: dict[str, tuple[int, int]] = {}  # existing originals changed
        self.ledger: list[LedgerEntry] = []
        self.changed: set[CapKey] = set()
        self.seen_ids: set[str] = set(originals)  # transaction IDs decided before or now
        self.uncovered: set[int] = set()  # holders refused as certificate_expired

    def _store(
        self,
        report: Report,
        digest: str,
        outcome: Outcome,
        *,
        points: int = 0,
        application: Application | None = None,
        total_after: int | None = None,
        record_id: int | None = None,
    ) -> Decision:
        row = StoredTransaction(
            operator_id=self.operator_id,
            idempotency_key=report.idempotency_key,
            request_digest=digest,
            transaction_id=report.transaction_id,
            service_id=report.service_id,
            account_id=report.account_id,
            kind=report.kind,
            amount=report.amount,
            occurred_at=report.occurred_at,
            original_transaction_id=report.original_transaction_id,
            record_id=record_id
            if record_id is not None
            else (application.record_id if application else None),
            campaign_id=application.campaign_id if application else None,
            outcome=outcome,
            points=points,
            net_points=points if report.kind is not TransactionKind.REFUND else 0,
            refunded_amount=0,
            total_after=total_after,
            decided_at=self.now,
        )
        self.new_rows[report.idempotency_key] = row
        self.seen_ids.add(report.transaction_id)
        if report.kind is not TransactionKind.REFUND:
            self.originals[report.transaction_id] = row
        return row.decision(replayed=False)

    def _move(
        self,
        record_id: int,
        campaign_id: str,
        report: Report,
        points: int,
        kind: LedgerKind,
        cap_group: str,
    ) -> int:
        """Points to (or from) a MyKey ID, counted against its person's cap."""
        key = (self.people[record_id], cap_group)
        self.totals[key] = self.totals.get(key, 0) + points
        self.changed.add(key)
        if points:
            self.ledger.append(
                LedgerEntry(
                    record_id=record_id,
                    cap_group=cap_group,
                    campaign_id=campaign_id,
                    kind=kind,
                    points=points,
                    operator_id=self.operator_id,
                    service_id=report.service_id,
                    account_id=report.account_id,
                    transaction_id=report.transaction_id,
                    at=self.now,
                )
            )
        return self.totals[key]

    def charge(self, report: Report, digest: str) -> Decision:
        applied = self.applications.get((report.service_id, report.account_id), [])
        if not applied:
            return self._store(report, digest, Outcome.NO_APPLICATION)
        # The application is the person's; the points go to their current MyKey ID.
        current = self.current.get(applied[0].person_id)
        if current is None:  # revoked, and no new ID yet: nobody may hold these points
            return self._store(
                report, digest, Outcome.MYKEY_REVOKED, record_id=applied[0].record_id
            )
        holder, status = current
        if status is MyKeyStatus.STOPPED:  # the help desk stopped it: no points meanwhile
            return self._store(report, digest, Outcome.MYKEY_ID_STOPPED, record_id=holder)
        verdicts: list[tuple[Eligibility, Application, Campaign]] = []
        for application in applied:
            campaign = self.scheme.campaign(application.campaign_id)
            if campaign is None:
                continue
            verdict = eligibility(
                campaign.spend,
                report.occurred_at,
                application.applied_at,
                application.card_applied_on,
            )
            verdicts.append((verdict, application, campaign))
        chosen = next((v for v in verdicts if v[0] is Eligibility.ELIGIBLE), None)
        if chosen is None:
            before = any(v[0] is Eligibility.BEFORE_APPLICATION for v in verdicts)
            outcome = Outcome.BEFORE_APPLICATION if before else Outcome.OUTSIDE_CAMPAIGN
            return self._store(report, digest, outcome, record_id=applied[0].record_id)
        _, application, campaign = chosen
        if not certificate_valid_at(self.certificates.get(holder, []), report.occurred_at):
            self.uncovered.add(holder)
            return self._store(report, digest, Outcome.CERTIFICATE_EXPIRED, record_id=holder)
        group = campaign.spend.cap_group
        held = self.totals.get((application.person_id, group), 0)
        grant = decide_grant(report.amount, campaign.spend, held)
        total = self._move(
            holder, campaign.campaign_id, report, grant.points, LedgerKind.GRANT, group
        )
        outcome = Outcome.CAPPED if grant.capped else Outcome.GRANTED
        return self._store(
            report,
            digest,
            outcome,
            points=grant.points,
            application=application,
            total_after=total,
            record_id=holder,
        )

    def refund(self, report: Report, digest: str) -> Decision:
        assert report.original_transaction_id is not None
        original = self.originals.get(report.original_transaction_id)
        if original is None or original.kind is TransactionKind.REFUND:
            return self._store(report, digest, Outcome.ORIGINAL_UNKNOWN)
        if (report.service_id, report.account_id) != (original.service_id, original.account_id):
            # A refund gives back money on the account the charge was made on: reported on
            # another, it would take points from one holder and book them to another's.
            return self._store(report, digest, Outcome.REFUND_ACCOUNT_MISMATCH)
        if original.refunded_amount + report.amount > original.amount:
            return self._store(
                report, digest, Outcome.REFUND_EXCEEDS_ORIGINAL, record_id=original.record_id
            )
        taken = 0
        total: int | None = None
        if original.outcome.grants and original.net_points > 0:
            campaign = self.scheme.campaign(original.campaign_id or "")
            rate = campaign.spend.rate_percent if campaign else 0
            taken = refund_clawback(
                original.amount,
                original.refunded_amount,
                report.amount,
                original.net_points,
                rate,
            )
            group = campaign.spend.cap_group if campaign else "spend"
            assert original.record_id is not None
            assert original.campaign_id is not None
            total = self._move(
                original.record_id, original.campaign_id, report, -taken, LedgerKind.CLAWBACK,
                group,
            )  # fmt: skip
        updated = replace(
            original,
            net_points=original.net_points - taken,
            refunded_amount=original.refunded_amount + report.amount,
        )
        self.originals[original.transaction_id] = updated
        if original.idempotency_key in self.new_rows:
            self.new_rows[original.idempotency_key] = updated
        else:
            self.refunded[original.transaction_id] = (updated.net_points, updated.refunded_amount)
        row = self._store(
            report,
            digest,
            Outcome.TAKEN_BACK,
            points=-taken,
            record_id=original.record_id,
            total_after=total,
        )
        self.new_rows[report.idempotency_key] = replace(
            self.new_rows[report.idempotency_key], campaign_id=original.campaign_id
        )
        return row

    def decide(
        self,
        report: Report,
        digest: str,
        own: set[str],
        replays: Mapping[str, StoredTransaction],
        future_skew: timedelta,
    ) -> Decision:
        """One report's decision, in the batch's order: a retried key gets its first answer,
        then the operator's own service, the report's time and a unique transaction ID are
        required before the rules decide a charge or a refund."""
        first = replays.get(report.idempotency_key) or self.new_rows.get(report.idempotency_key)
        if first is not None:
            if first.request_digest != digest:
                return Decision(
                    report.idempotency_key,
                    report.transaction_id,
                    Outcome.IDEMPOTENCY_KEY_REUSED,
                    0,
                    None,
                )
            return first.decision(replayed=True)
        if report.service_id not in own:
            return Decision(
                report.idempotency_key, report.transaction_id, Outcome.SERVICE_UNKNOWN, 0, None
            )
        if is_future_dated(report.occurred_at, self.now, future_skew):
            # Not kept: the same report, sent again once its time has come, is decided then.
            return Decision(
                report.idempotency_key, report.transaction_id, Outcome.FUTURE_DATED, 0, None
            )
        if report.transaction_id in self.seen_ids:
            return Decision(
                report.idempotency_key,
                report.transaction_id,
                Outcome.DUPLICATE_TRANSACTION,
                0,
                None,
            )
        if report.kind is TransactionKind.REFUND:
            return self.refund(report, digest)
        return self.charge(report, digest)
