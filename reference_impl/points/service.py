"""The point system's rules in motion (SPEC.md "The points"), free of HTTP and SQL.

- **Applications**: a card login, one payment service per person per campaign, verified by the
  operator, then fixed for good; a payment account belongs to one MyKey ID.
- **Reports**: operators report charges, purchases and refunds in batches. A batch is one
  transaction: the people it touches are locked (their cap totals), every report is decided by
  :mod:`.rules`, and the decisions, ledger entries and one audit record commit together before
  the answer leaves. A retried idempotency key gets the first answer back and grants nothing.
- **Operators** sign every request (:mod:`.signing`); a nonce is spent in the same store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from reference_impl.audit import AuditEvent, RefusalBudget, bounded
from reference_impl.mykey import Conflict, MyKeyRecord, MyKeyService
from reference_impl.mykey.model import MyKeyStatus

from .campaign import Bonus, Campaign, Scheme
from .errors import PointsError
from .model import (
    REPORT_TIMES,
    Application,
    Decision,
    LedgerEntry,
    LedgerKind,
    Operator,
    Outcome,
    PaymentService,
    Report,
    StoredTransaction,
    TransactionKind,
)
from .ports import (
    AccountCheck,
    CapKey,
    OperatorUnreachable,
    PointsStore,
    PointsUnitOfWork,
    Registrations,
    RegistryUnreachable,
)
from .rules import (
    FUTURE_SKEW,
    CertificatePeriod,
    Eligibility,
    Registration,
    certificate_valid_at,
    decide_grant,
    eligibility,
    is_future_dated,
    japan_date,
    refund_clawback,
    registration_counts,
)
from .settlement import (
    Difference,
    OperatorRecord,
    Settlement,
    month_bounds,
    reconcile,
    settle,
    violations,
)
from .signing import MAX_SKEW, check_signature, signer_of

__all__ = ["REPORT_TIMES", "CardProof", "HolderPoints", "PointsService", "report_digest"]

Clock = Callable[[], datetime]
MAX_BATCH = 5000
_RACE_RETRIES = 5
_MAX_RENEWALS = 32  # links followed from one bound certificate (each renewal is years apart)


class _AskJlis(Exception):
    """Raised inside a report batch (rolling it back) when some holder had no certificate the
    platform knows at a charge's time: J-LIS is asked, outside the transaction, for what
    replaced the holders' bound certificates, and the batch is decided again."""

    def __init__(self, bound: dict[int, list[int]]) -> None:
        super().__init__("ask J-LIS for renewals")
        self.bound = bound  # MyKey record -> serials bound to it


@dataclass(frozen=True, slots=True)
class CardProof:
    """A card login: a LOGIN challenge signed by the card, with its certificate."""

    challenge_id: str
    certificate: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class HolderPoints:
    mykey_id: str
    applications: list[Application]  # the person's, made with this or an earlier MyKey ID
    points: dict[str, int]  # what this MyKey ID holds, per cap group
    cap_used: dict[str, int]  # what the person was granted per cap group, over all their IDs


def _person(record: MyKeyRecord) -> int:
    """The person behind a MyKey record (every record has one since migration 0005)."""
    if record.person_id is None:
        raise PointsError("mykey_not_found", "this MyKey ID has no person on record; ask again")
    return record.person_id


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


class _Batch:
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


class PointsService:
    def __init__(
        self,
        store: PointsStore,
        mykey: MyKeyService,
        scheme: Scheme,
        accounts: AccountCheck,
        *,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
        max_skew: timedelta = MAX_SKEW,
        anonymous_refusals: RefusalBudget | None = None,
        registrations: Registrations | None = None,
        future_skew: timedelta = FUTURE_SKEW,
    ) -> None:
        self.store = store
        self.mykey = mykey
        self.scheme = scheme
        self.accounts = accounts
        # The registries a bonus needs; without them every bonus claim is refused.
        self.registrations = registrations
        self.clock = clock or mykey.clock
        # Signatures are judged by real time even when the business clock replays 2020.
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self.max_skew = max_skew
        self.anonymous_refusals = anonymous_refusals or RefusalBudget()
        self.future_skew = future_skew  # how far after the business clock a report may be dated

    def _operation(self, action: str) -> Any:
        return self.mykey.operation(action)

    # --- operators -------------------------------------------------------------------------

    def register_operator(self, operator: Operator, services: Sequence[PaymentService]) -> None:
        for service in services:
            if service.operator_id != operator.operator_id:
                raise PointsError("invalid_request", f"{service.service_id} is not this operator's")
        with self._operation("operator_register") as (uow, _now, note):
            note["details"].update(
                operator=operator.operator_id, services=[s.service_id for s in services]
            )
            try:
                cast(PointsUnitOfWork, uow).add_operator(operator, services)
            except Conflict:
                raise PointsError(
                    "operator_exists",
                    f"operator {operator.operator_id} or one of its service IDs exists already",
                ) from None

    def authenticate(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        operator_id: str | None = None,
        source: str = "unknown",
    ) -> Operator:
        """The operator who signed this request; refuses unsigned, forged, stale and replays,
        and (given ``operator_id``, the one the path names) a signer acting for another.

        Audit: an authenticated request writes its full trail, refused (``operator_mismatch``)
        or not. A request whose sender is not proven writes at most a bounded record, and
        only as often as :attr:`anonymous_refusals` allows its ``source`` (issue #12: each
        anonymous 68 KB path used to be written to the never-pruned chain verbatim).
        """
        claimed: str | None = None
        try:
            claimed = signer_of(headers)
            with self.store.transaction() as uow:
                now = self.wall_clock()
                operator = uow.operator(claimed)
                if operator is None:
                    raise PointsError("operator_unknown", f"no operator {claimed!r} is registered")
                signed = check_signature(
                    operator.public_key, method, target, headers, body, now, self.max_skew
                )
                if not uow.remember_nonce(operator.operator_id, signed.nonce, now):
                    raise PointsError(
                        "request_replayed", "this request was sent before (same nonce)"
                    )
                if now.second == 0:  # about once a minute: forget nonces too old to be fresh
                    uow.forget_nonces(now - 2 * self.max_skew)
                details: dict[str, Any] = {"operator": operator.operator_id, "target": target}
                refusal: PointsError | None = None
                if operator_id is not None and operator_id != operator.operator_id:
                    details["for"] = operator_id
                    refusal = PointsError(
                        "operator_mismatch", f"signed by {operator.operator_id}, not {operator_id}"
                    )
                outcome = f"refused:{refusal.code}" if refusal else "ok"
                uow.audit(AuditEvent("operator_request", outcome, None, details), self.clock())
        except PointsError as exc:
            if exc.code in _UNPROVEN:
                self._audit_anonymous(exc, claimed, target, source)
            raise
        if refusal is not None:
            raise refusal
        return operator

    def _audit_anonymous(
        self, refusal: PointsError, claimed: str | None, target: str, source: str
    ) -> None:
        unrecorded = self.anonymous_refusals.admit(source, self.wall_clock())
        if unrecorded is None:
            return
        details: dict[str, Any] = {
            "source": bounded(source, 64),
            "target": bounded(target),
            "unrecorded_before": unrecorded,
        }
        if claimed is not None:
            details["operator"] = bounded(claimed, 64)
        event = AuditEvent("operator_request", f"refused:{refusal.code}", None, details)
        with self.store.transaction() as uow:
            uow.audit(event, self.clock())

    # --- applications ----------------------------------------------------------------------

    def apply(
        self,
        proof: CardProof,
        service_id: str,
        account_id: str,
        security_code: str,
        campaign_id: str | None = None,
    ) -> Application:
        """Choose the payment service for a campaign, with the card; once accepted, fixed."""
        if not account_id or len(account_id) > 128:
            raise PointsError("invalid_request", "payment service ID: 1 to 128 characters")
        with self._operation("apply_card") as (raw, now, note):
            uow = cast(PointsUnitOfWork, raw)
            holder = self.mykey.card_holder(
                uow, proof.challenge_id, proof.certificate, proof.signature, now
            )
            note["record_id"] = holder.record.record_id
            campaign = self._campaign_for(campaign_id, now)
            service = next((s for s in uow.services() if s.service_id == service_id), None)
            if service is None:
                raise PointsError("service_unknown", f"no payment service {service_id!r}")
            operator = uow.operator(service.operator_id)
            assert operator is not None
            person_id = _person(holder.record)
            existing = uow.application(person_id, campaign.campaign_id)
        # The holder proved the card (and the challenge is spent); now ask the operator.
        note_details = {"campaign": campaign.campaign_id, "service": service_id}
        verified = True  # a retry of an accepted application is answered from the store
        if existing is None:
            try:
                verified = self.accounts.verify_account(
                    operator, service_id, account_id, security_code
                )
            except OperatorUnreachable as exc:
                raise PointsError(
                    "operator_unavailable",
                    f"{operator.name} did not answer ({exc}); try again later",
                ) from None
        with self._operation("apply") as (raw, now, note):
            uow = cast(PointsUnitOfWork, raw)
            note["record_id"] = holder.record.record_id
            note["details"].update(note_details)
            current = uow.application(person_id, campaign.campaign_id)
            if current is not None:
                if (current.service_id, current.account_id) == (service_id, account_id):
                    # A retry of the same choice, or the person's new MyKey ID confirming it.
                    return current
                raise PointsError(
                    "already_applied",
                    f"you chose {current.service_id} for {campaign.campaign_id} (with this or "
                    "an earlier MyKey ID); the choice can never be changed",
                )
            if not verified:
                raise PointsError(
                    "account_not_verified",
                    f"{operator.name} does not recognise that payment service ID and security "
                    "code: check both in the service's app",
                )
            # J-LIS's card-application date (申請受付日), never the certificate's issue date.
            card_applied_on = holder.first_card_applied_on
            if not campaign.spend.admits(card_applied_on):
                raise PointsError(
                    "not_eligible",
                    f"{campaign.title} is for cards applied for by "
                    f"{campaign.spend.card_applied_by}",
                )
            if japan_date(now) > campaign.spend.window_end(card_applied_on):
                raise PointsError("campaign_closed", f"{campaign.title} has ended for your card")
            linked = uow.link_account(service_id, account_id, holder.record.record_id)
            if linked != holder.record.record_id and uow.people_of([linked]).get(linked) != (
                person_id
            ):
                raise PointsError(
                    "account_taken",
                    "that payment service ID is linked to someone else's MyKey ID: use your own",
                )
            try:
                return uow.add_application(
                    Application(
                        application_id=0,
                        campaign_id=campaign.campaign_id,
                        record_id=holder.record.record_id,
                        service_id=service_id,
                        account_id=account_id,
                        operator_id=operator.operator_id,
                        applied_at=now,
                        card_applied_on=card_applied_on,
                        feed_seq=0,
                        person_id=person_id,
                    )
                )
            except Conflict:
                raise PointsError(
                    "already_applied",
                    "an application was made at the same moment; ask again",
                    discard_changes=True,
                ) from None

    def claim_bonus(self, proof: CardProof, campaign_id: str, kind: str) -> LedgerEntry:
        """A registration bonus (round 2: health-insurance link, public-fund account), with
        the card, paid once per person to the service chosen for that campaign, and only
        when the registry holding that registration has one made by the deadline
        (:func:`~reference_impl.points.rules.registration_counts`)."""
        campaign = self.scheme.campaign(campaign_id)
        if campaign is None:
            raise PointsError("campaign_unknown", f"no campaign {campaign_id!r}")
        bonus = campaign.bonus(kind)
        if bonus is None:
            kinds = ", ".join(b.kind for b in campaign.bonuses) or "none"
            raise PointsError("bonus_unknown", f"{campaign.title} has no {kind!r} bonus ({kinds})")
        with self._operation("bonus") as (raw, now, note):
            uow = cast(PointsUnitOfWork, raw)
            holder = self.mykey.card_holder(
                uow, proof.challenge_id, proof.certificate, proof.signature, now
            )
            record_id = holder.record.record_id
            note["record_id"] = record_id
            note["details"].update(campaign=campaign_id, kind=kind)
            if not bonus.opens <= japan_date(now) <= bonus.closes:
                raise PointsError(
                    "campaign_closed", f"the {kind} bonus runs {bonus.opens} to {bonus.closes}"
                )
            person_id = _person(holder.record)
            application = uow.application(person_id, campaign_id)
            if application is None:
                raise PointsError(
                    "not_applied", f"apply for {campaign.title} first: the bonus goes to the "
                    "payment service you choose",
                )  # fmt: skip
            self._check_registration(bonus, holder.facts.person_ref, japan_date(now))
            key = (person_id, bonus.cap_group)
            held = uow.lock_totals([key])[key]
            if held >= bonus.yen:  # to this person, with this or an earlier MyKey ID
                raise PointsError("bonus_already_granted", f"the {kind} bonus was granted already")
            entry = LedgerEntry(
                record_id=record_id,
                cap_group=bonus.cap_group,
                campaign_id=campaign_id,
                kind=LedgerKind.BONUS,
                points=bonus.yen,
                operator_id=application.operator_id,
                service_id=application.service_id,
                account_id=application.account_id,
                transaction_id=f"bonus-{kind}-{person_id}",
                at=now,
            )
            uow.set_totals({key: bonus.yen})
            uow.append_ledger([entry])
            return entry

    def _check_registration(self, bonus: Bonus, person_ref: str, today: date) -> None:
        """Ask the registry that holds the bonus's registration; refuse unless it counts."""
        if self.registrations is None:
            raise PointsError(
                "registry_unavailable", f"no {bonus.kind} registry is connected to this platform"
            )
        try:
            registered_on = self.registrations.registered_on(bonus.kind, person_ref)
        except RegistryUnreachable as exc:
            raise PointsError(
                "registry_unavailable",
                f"the {bonus.kind} registry did not answer ({exc}); try again later",
            ) from None
        verdict = registration_counts(bonus, registered_on, today)
        if verdict is Registration.MISSING:
            raise PointsError(
                verdict.value,
                f"the {bonus.kind} registry has no registration of yours: register first "
                "(the bonus is paid for a registration that exists)",
            )
        if verdict is Registration.TOO_LATE:
            raise PointsError(
                verdict.value,
                f"your {bonus.kind} registration of {registered_on} was made after the "
                f"deadline {bonus.registration_deadline}",
            )

    def _campaign_for(self, campaign_id: str | None, now: datetime) -> Campaign:
        if campaign_id is not None:
            campaign = self.scheme.campaign(campaign_id)
            if campaign is None:
                known = ", ".join(sorted(self.scheme.campaigns))
                raise PointsError("campaign_unknown", f"no campaign {campaign_id!r} ({known})")
            if not campaign.accepts_applications_on(japan_date(now)):
                raise PointsError(
                    "campaign_closed",
                    f"{campaign.title} takes applications {campaign.opens} to {campaign.closes}",
                )
            return campaign
        open_now = self.scheme.open_for_applications(japan_date(now))
        if not open_now:
            raise PointsError("campaign_closed", "no campaign takes applications today")
        return open_now[0]

    def applications_feed(
        self, operator_id: str, after: int, limit: int = 500
    ) -> list[Application]:
        """New applications for an operator's services, in a gap-free order (cursor = feed_seq)."""
        if after < 0 or not 1 <= limit <= 5000:
            raise PointsError("invalid_request", "after must be ≥ 0 and limit 1..5000")
        with self.store.transaction() as uow:
            return uow.applications_feed(operator_id, after, limit)

    def holder_points(self, token: str) -> HolderPoints:
        with self._operation("points_show") as (raw, now, note):
            uow = cast(PointsUnitOfWork, raw)
            record = self.mykey.logged_in(uow, token, now)
            note["record_id"] = record.record_id
            person_id = _person(record)
            applications = [
                a for c in self.scheme.campaigns if (a := uow.application(person_id, c))
            ]
            return HolderPoints(
                record.mykey_id,
                applications,
                uow.points_of(record.record_id),
                uow.totals_of(person_id),
            )

    # --- reports ---------------------------------------------------------------------------

    def report(self, operator_id: str, reports: Sequence[Report]) -> list[Decision]:
        """Decide a batch, durably, in order; the answer for each report, in the same order."""
        if not 1 <= len(reports) <= MAX_BATCH:
            raise PointsError("invalid_request", f"send 1 to {MAX_BATCH} transactions per batch")
        for index, report in enumerate(reports):
            _check_report(index, report)
        renewals: dict[int, list[CertificatePeriod]] | None = None
        for attempt in range(_RACE_RETRIES):
            try:
                return self._report_once(operator_id, reports, renewals)
            except _AskJlis as asked:  # once per batch at most: then renewals is not None
                renewals = self._renewals(asked.bound)
            except Conflict:
                # A concurrent batch wrote one of these keys first: decide again, and the
                # retried key then gets that batch's answer.
                if attempt == _RACE_RETRIES - 1:
                    raise PointsError(
                        "busy",
                        "too many concurrent reports of the same transactions; retry",
                        discard_changes=True,
                    ) from None
        raise AssertionError("unreachable")

    def _renewals(self, bound: Mapping[int, list[int]]) -> dict[int, list[CertificatePeriod]]:
        """What J-LIS issued in place of each holder's bound certificates, followed along its
        old→new linkage: a renewal counts from its own start even before the holder presents
        the renewed card (seed 004: once the certificate is obtained again, MyNa Point can be
        used). Asked outside any transaction."""
        found: dict[int, list[CertificatePeriod]] = {}
        for holder, serials in bound.items():
            known = set(serials)
            for serial in serials:
                current = serial
                for _ in range(_MAX_RENEWALS):
                    replacement = self.mykey.jlis.replacement(current)
                    if replacement is None or replacement.serial in known:
                        break
                    known.add(replacement.serial)
                    period = CertificatePeriod(replacement.not_before, replacement.not_after)
                    found.setdefault(holder, []).append(period)
                    current = replacement.serial
        return found

    def _report_once(
        self,
        operator_id: str,
        reports: Sequence[Report],
        renewals: Mapping[int, list[CertificatePeriod]] | None = None,
    ) -> list[Decision]:
        """One try at deciding a batch. ``renewals`` (holder -> certificates J-LIS issued in
        place of theirs) is None until J-LIS was asked: a batch that finds a holder without a
        known certificate at a charge's time is then rolled back (:class:`_AskJlis`)."""
        digests = [report_digest(r) for r in reports]
        with self._operation("report") as (raw, now, note):
            uow = cast(PointsUnitOfWork, raw)
            own = {s.service_id for s in uow.services(operator_id)}
            accounts = {(r.service_id, r.account_id) for r in reports if r.service_id in own}
            applications = uow.applications_for_accounts(accounts)
            ids = {r.transaction_id for r in reports} | {
                r.original_transaction_id for r in reports if r.original_transaction_id
            }
            known = uow.transactions_by_id(operator_id, ids)
            people = uow.people_of({r.record_id for r in known.values() if r.record_id})
            keys: set[CapKey] = set()
            for applied in applications.values():
                for a in applied:
                    campaign = self.scheme.campaign(a.campaign_id)
                    if campaign:
                        keys.add((a.person_id, campaign.spend.cap_group))
            for row in known.values():
                campaign = self.scheme.campaign(row.campaign_id or "")
                if row.record_id in people and campaign:
                    keys.add((people[row.record_id], campaign.spend.cap_group))
            totals = uow.lock_totals(sorted(keys))
            # Read after the locks: a batch that held them has committed what it decided.
            replays = uow.transactions_by_key(operator_id, {r.idempotency_key for r in reports})
            known = uow.transactions_by_id(operator_id, ids)
            current = uow.current_records({k[0] for k in keys})
            records = {record for record, _status in current.values()}
            people.update({record: person for person, (record, _s) in current.items()})
            people.update(uow.people_of({r.record_id for r in known.values() if r.record_id}))
            certificates = uow.certificate_periods(records)
            for holder, periods in (renewals or {}).items():
                certificates.setdefault(holder, []).extend(periods)
            batch = _Batch(
                self.scheme, operator_id, now, applications, current, people, totals, known,
                certificates,
            )  # fmt: skip
            decisions: list[Decision] = []
            for report, digest in zip(reports, digests, strict=True):
                decisions.append(self._decide(batch, report, digest, own, replays))
            if renewals is None and batch.uncovered:
                raise _AskJlis(uow.bound_serials(batch.uncovered))
            uow.add_transactions(list(batch.new_rows.values()))
            if batch.refunded:
                uow.update_refunded(operator_id, batch.refunded)
            if batch.changed:
                uow.set_totals({k: batch.totals[k] for k in batch.changed})
            if batch.ledger:
                uow.append_ledger(batch.ledger)
            note["details"].update(
                operator=operator_id,
                reports=len(reports),
                new=len(batch.new_rows),
                points=sum(e.points for e in batch.ledger),
                digest=hashlib.sha256("".join(digests).encode()).hexdigest(),
            )
            return decisions

    def _decide(
        self,
        batch: _Batch,
        report: Report,
        digest: str,
        own: set[str],
        replays: dict[str, StoredTransaction],
    ) -> Decision:
        first = replays.get(report.idempotency_key) or batch.new_rows.get(report.idempotency_key)
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
        if is_future_dated(report.occurred_at, batch.now, self.future_skew):
            # Not kept: the same report, sent again once its time has come, is decided then.
            return Decision(
                report.idempotency_key, report.transaction_id, Outcome.FUTURE_DATED, 0, None
            )
        if report.transaction_id in batch.seen_ids:
            return Decision(
                report.idempotency_key,
                report.transaction_id,
                Outcome.DUPLICATE_TRANSACTION,
                0,
                None,
            )
        if report.kind is TransactionKind.REFUND:
            return batch.refund(report, digest)
        return batch.charge(report, digest)

    # --- settlement, reconciliation, invariants -----------------------------------------------

    def settlement(self, operator_id: str, month: str) -> Settlement:
        try:
            start, end = month_bounds(month)
        except ValueError as exc:
            raise PointsError("invalid_request", str(exc)) from None
        with self.store.transaction() as uow:
            if uow.operator(operator_id) is None:
                raise PointsError("operator_unknown", f"no operator {operator_id!r}")
            entries = uow.ledger_entries(operator_id=operator_id, start=start, end=end)
        return settle(operator_id, month, entries)

    def reconcile(
        self, operator_id: str, month: str, records: Sequence[OperatorRecord]
    ) -> list[Difference]:
        """The operator's books for a month against the platform's decided transactions."""
        try:
            start, end = month_bounds(month)
        except ValueError as exc:
            raise PointsError("invalid_request", str(exc)) from None
        with self.store.transaction() as uow:
            ours = [
                t
                for t in uow.transactions_of(operator_id, start, end)
                if t.outcome.grants or t.outcome in _RECORDED_REFUSALS
            ]
        return reconcile(records, ours)

    def violations(self) -> list[str]:
        """The ledger's invariants, checked over everything the store holds."""
        with self.store.transaction() as uow:
            return violations(
                self.scheme,
                uow.ledger_entries(),
                uow.all_totals(),
                uow.all_transactions(),
                uow.record_people(),
            )


# Refusals of a request whose sender is not proven (a replay may be anyone's capture).
_UNPROVEN = frozenset(
    {
        "request_unsigned",
        "operator_unknown",
        "request_stale",
        "request_signature_invalid",
        "request_replayed",
    }
)

# Refused reports are still the operator's transactions (with 0 points): they reconcile too.
_RECORDED_REFUSALS = frozenset(
    {
        Outcome.NO_APPLICATION,
        Outcome.BEFORE_APPLICATION,
        Outcome.OUTSIDE_CAMPAIGN,
        Outcome.MYKEY_REVOKED,
        Outcome.MYKEY_ID_STOPPED,
        Outcome.CERTIFICATE_EXPIRED,
        Outcome.ORIGINAL_UNKNOWN,
        Outcome.REFUND_EXCEEDS_ORIGINAL,
        Outcome.REFUND_ACCOUNT_MISMATCH,
    }
)
