"""The point system's rules in motion (SPEC.md "The points"), free of HTTP and SQL.

- **Applications**: a card login, one payment service per person per campaign, verified by the
  operator, then fixed for good; a payment account belongs to one MyKey ID.
- **Reports**: operators report charges, purchases and refunds in batches. A batch is one
  transaction: the people it touches are locked (their cap totals), every report is decided by
  :mod:`.batch` (with :mod:`.rules`), and the decisions, ledger entries and one audit record
  commit together before the answer leaves. A signed batch spends its nonce in that same
  transaction. A retried idempotency key gets the first answer back and grants nothing.
- **Operators** sign every request (:mod:`.signing`); a nonce is spent in the same store.

Every operation runs in one audited transaction of the point system's own store
(:func:`~mynahil.reference_impl.audited.audited_operation`): one audit record, success or
refusal."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mynahil.reference_impl.audit import AuditEvent, RefusalBudget, bounded
from mynahil.reference_impl.mykey import Conflict, MyKeyRecord, MyKeyService

from .batch import MAX_BATCH, Batch, check_batch, report_digest
from .books import Clock, PointsBooks
from .campaign import Bonus, Campaign, Scheme
from .errors import PointsError
from .model import (
    REPORT_TIMES,
    Application,
    Decision,
    LedgerEntry,
    LedgerKind,
    Operator,
    Report,
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
    Registration,
    japan_date,
    registration_counts,
)
from .signing import MAX_SKEW, NONCE, check_signature, signer_of

__all__ = [
    "MAX_BATCH",
    "REPORT_TIMES",
    "CardProof",
    "HolderPoints",
    "OperatorRequest",
    "PointsService",
    "report_digest",
]

_RACE_RETRIES = 5
_MAX_RENEWALS = 32  # links followed from one bound certificate (each renewal is years apart)


class _AskJlis(Exception):
    """Raised inside a report batch (rolling it back) when some holder had no certificate the
    platform knows at a charge's time: J-LIS is asked, outside the transaction, for what
    replaced the holders' bound certificates, and the batch is decided again."""

    def __init__(self, bound: dict[int, list[int]]) -> None:
        super().__init__("ask J-LIS for renewals")
        self.bound = bound  # MyKey record -> serials bound to it


class _Unproven(Exception):
    """Raised inside a signed report's transaction (rolling it back, nonce included) when the
    request's sender is not proven: such a refusal is audited apart, within a budget
    (:meth:`PointsService._audit_anonymous`), never as the operation's own record."""

    def __init__(self, refusal: PointsError) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """An operator's request as it arrived: what its signature covers, and where it came
    from (``source``, for the budget of anonymous refusals)."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    source: str = "unknown"


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


class PointsService(PointsBooks):
    """The holders' and operators' live flows (applications, bonuses, reports) over the
    books (:class:`~.books.PointsBooks`: operators, settlement, reconciliation, invariants)."""

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
        super().__init__(store, scheme, clock=clock or mykey.clock)
        self.mykey = mykey
        self.accounts = accounts
        # The registries a bonus needs; without them every bonus claim is refused.
        self.registrations = registrations
        # Signatures are judged by real time even when the business clock replays 2020.
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self.max_skew = max_skew
        self.anonymous_refusals = anonymous_refusals or RefusalBudget()
        self.future_skew = future_skew  # how far after the business clock a report may be dated

    # --- operators -------------------------------------------------------------------------

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
        request = OperatorRequest(method, target, headers, body, source)
        claimed: str | None = None
        try:
            claimed = signer_of(headers)
            with self.store.transaction() as uow:
                operator = self._admit(uow, claimed, request)
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

    def _admit(self, uow: PointsUnitOfWork, claimed: str, request: OperatorRequest) -> Operator:
        """The operator ``claimed`` if the request is theirs, fresh and new: its nonce is then
        spent in ``uow``. Refusals are those of an unproven sender (:data:`_UNPROVEN`)."""
        now = self.wall_clock()
        operator = uow.operator(claimed)
        if operator is None:
            raise PointsError("operator_unknown", f"no operator {claimed!r} is registered")
        signed = check_signature(
            operator.public_key,
            request.method,
            request.target,
            request.headers,
            request.body,
            now,
            self.max_skew,
        )
        if not uow.remember_nonce(operator.operator_id, signed.nonce, now):
            raise PointsError("request_replayed", "this request was sent before (same nonce)")
        if now.second == 0:  # about once a minute: forget nonces too old to be fresh
            uow.forget_nonces(now - 2 * self.max_skew)
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
        with self._operation("apply_card") as (uow, now, note):
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
        with self._operation("apply") as (uow, now, note):
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
        (:func:`~mynahil.reference_impl.points.rules.registration_counts`)."""
        campaign = self.scheme.campaign(campaign_id)
        if campaign is None:
            raise PointsError("campaign_unknown", f"no campaign {campaign_id!r}")
        bonus = campaign.bonus(kind)
        if bonus is None:
            kinds = ", ".join(b.kind for b in campaign.bonuses) or "none"
            raise PointsError("bonus_unknown", f"{campaign.title} has no {kind!r} bonus ({kinds})")
        with self._operation("bonus") as (uow, now, note):
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
        with self._operation("points_show") as (uow, now, note):
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

    def report(
        self,
        operator_id: str,
        reports: Sequence[Report],
        *,
        signed: OperatorRequest | None = None,
    ) -> list[Decision]:
        """Decide a batch, durably, in order; the answer for each report, in the same order.

        ``signed``: the operator's request that carried the batch (over HTTP). Its signature
        is checked and its nonce spent in the batch's own transaction, whose one audit record
        then also names the request's target. A request that is refused before any report is
        decided (unsigned, forged, stale, replayed, signed for another operator, or a
        malformed batch) is audited as :meth:`authenticate` audits it.
        """
        if signed is not None:
            try:
                claimed = signer_of(signed.headers)
                check_batch(reports)
            except PointsError:
                self._authenticate(signed, operator_id)  # an unsigned request is refused first
                raise
            if claimed != operator_id:
                self._authenticate(signed, operator_id)
                raise AssertionError("authenticate refuses a signer acting for another operator")
        else:
            check_batch(reports)
        renewals: dict[int, list[CertificatePeriod]] | None = None
        try:
            for attempt in range(_RACE_RETRIES):
                try:
                    return self._report_once(operator_id, reports, renewals, signed)
                except _AskJlis as asked:  # once per batch at most: then renewals is not None
                    renewals = self._renewals(asked.bound)
                except Conflict:
                    # A concurrent batch wrote one of these keys first: decide again, and the
                    # retried key then gets that batch's answer.
                    if attempt == _RACE_RETRIES - 1:
                        self._refuse_busy(operator_id, signed)
        except _Unproven as unproven:
            assert signed is not None
            self._audit_anonymous(unproven.refusal, operator_id, signed.target, signed.source)
            raise unproven.refusal from None
        raise AssertionError("unreachable")

    def _authenticate(self, signed: OperatorRequest, operator_id: str) -> Operator:
        return self.authenticate(
            signed.method,
            signed.target,
            signed.headers,
            signed.body,
            operator_id=operator_id,
            source=signed.source,
        )

    def _refuse_busy(self, operator_id: str, signed: OperatorRequest | None) -> None:
        """Give up on a batch that kept racing others. A signed request's nonce stays spent
        (a replay is refused as one) and its refusal is audited with it."""
        busy = "too many concurrent reports of the same transactions; retry"
        if signed is None:
            raise PointsError("busy", busy, discard_changes=True) from None
        with self._operation("report") as (uow, _now, note):
            note["details"].update(operator=operator_id, target=signed.target)
            uow.remember_nonce(operator_id, signed.headers[NONCE], self.wall_clock())
            raise PointsError("busy", busy) from None

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
        renewals: Mapping[int, list[CertificatePeriod]] | None,
        signed: OperatorRequest | None,
    ) -> list[Decision]:
        """One try at deciding a batch. ``renewals`` (holder -> certificates J-LIS issued in
        place of theirs) is None until J-LIS was asked: a batch that finds a holder without a
        known certificate at a charge's time is then rolled back (:class:`_AskJlis`)."""
        digests = [report_digest(r) for r in reports]
        with self._operation("report") as (uow, now, note):
            if signed is not None:
                try:
                    self._admit(uow, operator_id, signed)
                except PointsError as refusal:
                    raise _Unproven(refusal) from None
                note["details"]["target"] = signed.target
            own = {s.service_id for s in uow.services(operator_id)}
            accounts = {(r.service_id, r.account_id) for r in reports if r.service_id in own}
            applications = uow.applications_for_accounts(accounts)
            originals = {r.original_transaction_id for r in reports if r.original_transaction_id}
            ids = {r.transaction_id for r in reports} | originals
            # Before the locks, only what names the totals to lock: a refund takes points back
            # from its original's holder (a charge's holder comes with its application).
            known = uow.transactions_by_id(operator_id, originals)
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
            batch = Batch(
                self.scheme, operator_id, now, applications, current, people, totals, known,
                certificates,
            )  # fmt: skip
            decisions = [
                batch.decide(report, digest, own, replays, self.future_skew)
                for report, digest in zip(reports, digests, strict=True)
            ]
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
