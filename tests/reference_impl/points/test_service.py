"""The point system's rules end to end on each store (SPEC.md "The points")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from msgspec.structs import replace

from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.points import Outcome, PointsError, TransactionKind
from tests.reference_impl.points.harness import OPERATOR, SERVICE, START, PointsPlatform

SEPT = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)


def test_a_quarter_of_each_charge_until_the_cap(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    first = points.report(person, 10_000)
    assert (first.outcome, first.points, first.total_after) == (Outcome.GRANTED, 2500, 2500)
    second = points.report(person, 8_000)
    assert (second.outcome, second.points, second.total_after) == (Outcome.GRANTED, 2000, 4500)
    third = points.report(person, 4_000)
    assert (third.outcome, third.points, third.total_after) == (Outcome.CAPPED, 500, 5000)
    fourth = points.report(person, 1_000)
    assert (fourth.outcome, fourth.points, fourth.total_after) == (Outcome.CAPPED, 0, 5000)
    assert points.points.violations() == []


def test_fractions_are_dropped_per_charge(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    assert points.report(person, 99).points == 24


def test_charges_before_the_application_or_outside_the_window_earn_nothing(
    points: PointsPlatform,
) -> None:
    person = points.person()
    points.advance_to(datetime(2022, 1, 5, tzinfo=UTC))  # reports come in after the fact
    before = points.report(person, 1000, at=START - timedelta(minutes=1))
    assert before.outcome is Outcome.BEFORE_APPLICATION
    august = points.report(person, 1000, at=START + timedelta(hours=1))  # before 2020-09-01
    assert august.outcome is Outcome.OUTSIDE_CAMPAIGN
    # 2021-03-31 23:59 JST counts; the next minute counts only for the extension's holders,
    # and this card was applied for in 2020, so the window runs to 2021-12-31.
    late = points.report(person, 1000, at=datetime(2021, 12, 31, 14, 59, tzinfo=UTC))
    assert late.outcome is Outcome.GRANTED
    after = points.report(person, 1000, at=datetime(2021, 12, 31, 15, 0, tzinfo=UTC))
    assert after.outcome is Outcome.OUTSIDE_CAMPAIGN


def test_no_points_without_an_application(points: PointsPlatform) -> None:
    person = points.person(apply=False)
    points.advance_to(SEPT)
    assert points.report(person, 1000).outcome is Outcome.NO_APPLICATION
    assert points.points.violations() == []


def test_a_retried_report_returns_the_first_answer_and_grants_once(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    first = points.report(person, 4000, key="k1", transaction_id="t1")
    again = points.report(person, 4000, key="k1", transaction_id="t1")
    assert (again.outcome, again.points, again.total_after) == (Outcome.GRANTED, 1000, 1000)
    assert again.replayed
    assert not first.replayed
    reused = points.report(person, 9999, key="k1", transaction_id="t1")
    assert reused.outcome is Outcome.IDEMPOTENCY_KEY_REUSED
    duplicate = points.report(person, 4000, key="k2", transaction_id="t1")
    assert duplicate.outcome is Outcome.DUPLICATE_TRANSACTION
    assert points.points.violations() == []


def test_refunds_take_back_what_the_remaining_amount_no_longer_earns(
    points: PointsPlatform,
) -> None:
    person = points.person()
    points.advance_to(SEPT)
    points.report(person, 18_000, transaction_id="big")  # 4,500
    clipped = points.report(person, 4_000, transaction_id="clipped")  # 500 of 1,000
    assert clipped.points == 500
    # Refunding 1,000 of the clipped charge: 3,000 left still earns 750 ≥ 500, so nothing.
    partial = points.report(person, 1000, kind=TransactionKind.REFUND, refund_of="clipped")
    assert (partial.outcome, partial.points) == (Outcome.TAKEN_BACK, 0)
    # Refunding 2,800 more: 200 left earns 50, so 450 go back.
    more = points.report(person, 2800, kind=TransactionKind.REFUND, refund_of="clipped")
    assert (more.points, more.total_after) == (-450, 4550)
    too_much = points.report(person, 201, kind=TransactionKind.REFUND, refund_of="clipped")
    assert too_much.outcome is Outcome.REFUND_EXCEEDS_ORIGINAL
    unknown = points.report(person, 10, kind=TransactionKind.REFUND, refund_of="nope")
    assert unknown.outcome is Outcome.ORIGINAL_UNKNOWN
    full = points.report(person, 18_000, kind=TransactionKind.REFUND, refund_of="big")
    assert (full.points, full.total_after) == (-4500, 50)
    # What the refunds freed under the cap is there for later charges.
    assert points.report(person, 4000).points == 1000
    assert points.points.violations() == []


def test_application_is_fixed_once_accepted(points: PointsPlatform) -> None:
    person = points.person()
    again = points.apply(person)  # the same choice again: the same application
    assert again.service_id == SERVICE
    other = points.books.open_account("same person, second account")
    with pytest.raises(PointsError) as refused:
        points.apply(person, account_id=other.account_id, security_code=other.security_code)
    assert refused.value.code == "already_applied"


def test_someone_elses_payment_account_is_refused(points: PointsPlatform) -> None:
    owner = points.person()
    intruder = points.person(apply=False)
    with pytest.raises(PointsError) as refused:
        points.apply(intruder, account_id=owner.account_id, security_code=owner.security_code)
    assert refused.value.code == "account_taken"


def test_wrong_security_code_is_refused(points: PointsPlatform) -> None:
    person = points.person(apply=False)
    with pytest.raises(PointsError) as refused:
        points.apply(person, security_code="000000" if person.security_code != "000000" else "1")
    assert refused.value.code == "account_not_verified"


def test_no_mykey_id_revoked_id_and_expired_certificate_cannot_apply(
    points: PointsPlatform,
) -> None:
    saved = points.clock.now
    points.clock.now = START - timedelta(days=30)
    bare = points.new_card()
    points.clock.now = saved
    account = points.books.open_account("bare")
    with pytest.raises(MyKeyError) as no_id:
        points.points.apply(
            points.card_proof(bare), SERVICE, account.account_id, account.security_code
        )
    assert no_id.value.code == "mykey_not_found"

    person = points.person(apply=False)
    token = points.login_card(person.holder).token
    points.service.revoke(token)
    with pytest.raises(MyKeyError) as revoked:
        points.apply(person)
    assert revoked.value.code == "mykey_not_found"  # a revoked ID is no ID: issue a new one

    expiring = points.person(apply=False)
    points.advance_to(START + timedelta(days=365 * 6))
    with pytest.raises(MyKeyError) as expired:
        points.apply(expiring)
    assert expired.value.code == "certificate_expired"


def test_a_revoked_mykey_id_holds_no_points(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    points.service.revoke(points.login_card(person.holder).token)
    assert points.report(person, 1000).outcome is Outcome.MYKEY_REVOKED


def test_cap_is_shared_by_a_reissued_cards_old_and_new_certificates(
    points: PointsPlatform,
) -> None:
    person = points.person()
    points.advance_to(SEPT)
    points.report(person, 16_000)  # 4,000
    points.reissue(person.holder)  # new card, new keys, linked by J-LIS
    points.issue(person.holder)  # first sight of the new certificate binds it
    assert points.report(person, 8_000).points == 1000
    assert points.report(person, 8_000).points == 0


def test_the_feed_lists_every_application_once_in_order(points: PointsPlatform) -> None:
    people = [points.person() for _ in range(5)]
    first = points.points.applications_feed(OPERATOR, 0, limit=3)
    rest = points.points.applications_feed(OPERATOR, first[-1].feed_seq, limit=10)
    listed = [a.account_id for a in first + rest]
    assert listed == [p.account_id for p in people]
    assert [a.feed_seq for a in first + rest] == [1, 2, 3, 4, 5]


def test_settlement_and_reconciliation(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    for amount in (1000, 2000):
        report = points.books.book(person.account_id, amount, SEPT)
        points.books.answered(points.points.report(OPERATOR, [report]))
    settlement = points.points.settlement(OPERATOR, "2020-09")
    assert settlement.totals()[SERVICE]["net"] == 750
    assert "transaction_id" in settlement.to_csv().splitlines()[0]
    records = points.books.records("2020-09")
    assert points.points.reconcile(OPERATOR, "2020-09", records) == []
    tampered = [records[0], type(records[1])(records[1].transaction_id, "charge", 2000, 9)]
    missing = points.books.book(person.account_id, 5, SEPT)
    differences = points.points.reconcile(
        OPERATOR, "2020-09", [*tampered, type(records[0])(missing.transaction_id, "charge", 5, 1)]
    )
    assert {(d.problem) for d in differences} == {"points", "missing_at_platform"}


ROUND2_DAY = datetime(2022, 7, 1, 3, 0, tzinfo=UTC)


def test_round2_carries_over_round1_and_pays_each_bonus_once(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    points.report(person, 16_000)  # round 1: 4,000
    points.advance_to(ROUND2_DAY)
    proof = points.card_proof(person.holder)
    with pytest.raises(PointsError) as not_applied:
        points.points.claim_bonus(proof, "round2", "health_insurance")
    assert not_applied.value.code == "not_applied"
    applied = points.apply(person, campaign_id="round2")
    assert applied.campaign_id == "round2"
    later = ROUND2_DAY + timedelta(hours=1)
    points.advance_to(later)
    assert points.report(person, 16_000, at=later).points == 1000  # what round 1 left
    points.register(person, "health_insurance", date(2021, 10, 20))  # before the round: counts
    points.register(person, "public_fund_account", ROUND2_DAY.date())
    bonus = points.points.claim_bonus(
        points.card_proof(person.holder), "round2", "health_insurance"
    )
    assert (bonus.points, bonus.account_id) == (7500, person.account_id)
    with pytest.raises(PointsError) as twice:
        points.points.claim_bonus(points.card_proof(person.holder), "round2", "health_insurance")
    assert twice.value.code == "bonus_already_granted"
    points.points.claim_bonus(points.card_proof(person.holder), "round2", "public_fund_account")
    with pytest.raises(PointsError) as unknown:
        points.points.claim_bonus(points.card_proof(person.holder), "round1", "health_insurance")
    assert unknown.value.code == "bonus_unknown"
    settlement = points.points.settlement(OPERATOR, "2022-07")
    assert settlement.totals()[SERVICE] == {
        "granted": 1000, "taken_back": 0, "bonus": 15_000, "net": 16_000, "entries": 3,
    }  # fmt: skip
    assert points.points.violations() == []


def test_a_refund_reported_on_another_account_is_refused(points: PointsPlatform) -> None:
    """Issue #12 item 7: the refund of one holder's charge, reported on another holder's
    account, took the points from the first and settlement booked it to the second."""
    alice, bob = points.person(), points.person()
    points.advance_to(SEPT)
    charge = points.report(alice, 10_000, transaction_id="alice-charge")
    assert charge.points == 2500
    points.report(bob, 4_000, transaction_id="bob-charge")
    refund = points.report(
        bob, 10_000, kind=TransactionKind.REFUND, refund_of="alice-charge", transaction_id="r1"
    )
    assert (refund.outcome, refund.points, refund.total_after) == (
        Outcome.REFUND_ACCOUNT_MISMATCH, 0, None,
    )  # fmt: skip
    assert refund.outcome.value == "refund_account_mismatch"
    # Nothing moved: Alice keeps her points, the charge can still be refunded on her account.
    settlement = points.points.settlement(OPERATOR, "2020-09")
    assert [(e.account_id, e.points) for e in settlement.entries] == [
        (alice.account_id, 2500), (bob.account_id, 1000),
    ]  # fmt: skip
    back = points.report(alice, 10_000, kind=TransactionKind.REFUND, refund_of="alice-charge")
    assert (back.outcome, back.points, back.total_after) == (Outcome.TAKEN_BACK, -2500, 0)
    clawback = points.points.settlement(OPERATOR, "2020-09").entries[-1]
    assert (clawback.account_id, clawback.points) == (alice.account_id, -2500)
    assert points.points.violations() == []


def test_the_check_finds_a_refund_booked_on_another_account() -> None:
    """`mynahil points check`'s invariant 5, on rows written before the refusal existed."""
    from mynahil.reference_impl.points import LedgerEntry, LedgerKind, load_scheme
    from mynahil.reference_impl.points.model import StoredTransaction
    from mynahil.reference_impl.points.settlement import violations

    at = SEPT
    charge = StoredTransaction(
        operator_id=OPERATOR, idempotency_key="k-c1", request_digest="0" * 64,
        transaction_id="c1", service_id=SERVICE, account_id="alice-acct",
        kind=TransactionKind.CHARGE, amount=10_000, occurred_at=at, original_transaction_id=None,
        record_id=1, campaign_id="round1", outcome=Outcome.GRANTED, points=2500, net_points=0,
        refunded_amount=10_000, total_after=2500, decided_at=at,
    )  # fmt: skip
    refund = replace(
        charge, idempotency_key="k-r1", transaction_id="r1", account_id="bob-acct",
        kind=TransactionKind.REFUND, original_transaction_id="c1", outcome=Outcome.TAKEN_BACK,
        points=-2500, refunded_amount=0, total_after=0,
    )  # fmt: skip
    entries = [
        LedgerEntry(1, "spend", "round1", LedgerKind.GRANT, 2500, OPERATOR, SERVICE,
                    "alice-acct", "c1", at),
        LedgerEntry(1, "spend", "round1", LedgerKind.CLAWBACK, -2500, OPERATOR, SERVICE,
                    "bob-acct", "r1", at),
    ]  # fmt: skip
    found = violations(load_scheme(), entries, {(1, "spend"): 0}, [charge, refund], {1: 1})
    assert any("refund r1: reported on qr-pay/bob-acct" in p for p in found), found
    assert any("ledger entry for r1: booked on qr-pay/bob-acct" in p for p in found), found


# --- expired certificates (seed 004) and future-dated reports ----------------------------------

# Born 1980-10-01, card issued 2016-06-01: the certificate runs to the 5th birthday after
# issuance, 2020-10-01 (JST); the card itself to 2026-10-01.
BORN, CARD_ISSUED = datetime(1980, 10, 1).date(), datetime(2016, 6, 1).date()
OCT_15 = datetime(2020, 10, 15, 3, 0, tzinfo=UTC)
NOV_1 = datetime(2020, 11, 1, 3, 0, tzinfo=UTC)


def test_no_points_while_the_certificate_is_expired_and_again_after_renewal(
    points: PointsPlatform,
) -> None:
    """Seed 004: while the certificate stays expired, MyNa Point cannot be used; renewed, it
    can. The charge's own time decides, whenever it is reported."""
    person = points.person(born=BORN, issued_on=CARD_ISSUED)
    points.advance_to(SEPT)
    assert points.report(person, 4_000).outcome is Outcome.GRANTED
    points.advance_to(OCT_15)
    expired = points.report(person, 4_000)
    assert (expired.outcome, expired.points, expired.total_after) == (
        Outcome.CERTIFICATE_EXPIRED, 0, None,
    )  # fmt: skip
    with pytest.raises(MyKeyError) as no_apply:  # nor may an expired card apply
        points.apply(person, campaign_id="round1")
    assert no_apply.value.code == "certificate_expired"
    points.advance_to(NOV_1)
    points.renew(person.holder)  # at the municipal window, for free
    points.login_card(person.holder)  # the platform sees the renewed certificate
    later = NOV_1 + timedelta(hours=1)
    points.advance_to(later)
    assert points.report(person, 4_000, at=later).outcome is Outcome.GRANTED
    # A charge made in the gap stays outside, even when reported after the renewal.
    gap = points.report(person, 4_000, at=datetime(2020, 10, 20, 3, 0, tzinfo=UTC))
    assert gap.outcome is Outcome.CERTIFICATE_EXPIRED
    # A retry gets the same answer; the refusal is the operator's transaction of record.
    assert points.report(person, 4_000, key=f"key-{gap.transaction_id}",
                         transaction_id=gap.transaction_id,
                         at=datetime(2020, 10, 20, 3, 0, tzinfo=UTC)).replayed  # fmt: skip
    assert points.points.violations() == []


def test_a_renewal_counts_from_its_day_before_the_renewed_card_is_presented(
    points: PointsPlatform,
) -> None:
    """Seed 004: once the certificate is obtained again, MyNa Point can be used (no new
    registration). J-LIS's linkage tells the platform of the renewal: a charge made after it
    earns even when it is reported before the holder has used the renewed card anywhere."""
    renewing = points.person(born=BORN, issued_on=CARD_ISSUED)
    lapsed = points.person(born=BORN, issued_on=CARD_ISSUED)  # never renews
    points.advance_to(NOV_1)
    points.renew(renewing.holder)  # at the window; the platform is not told
    later = NOV_1 + timedelta(hours=1)
    points.advance_to(later)
    renewed = points.report(renewing, 4_000, at=later)
    assert (renewed.outcome, renewed.points) == (Outcome.GRANTED, 1_000)
    gap = points.report(renewing, 4_000, at=OCT_15)  # before the renewal: still expired
    assert (gap.outcome, gap.points) == (Outcome.CERTIFICATE_EXPIRED, 0)
    still = points.report(lapsed, 4_000, at=later)
    assert (still.outcome, still.points) == (Outcome.CERTIFICATE_EXPIRED, 0)
    # Renewed twice (the second card lost and reissued) before a charge is reported: the
    # linkage is followed to the end, and only the decided reports are kept.
    points.advance_to(later + timedelta(days=1))
    points.renew(lapsed.holder)
    points.reissue(lapsed.holder)
    reissued_at = later + timedelta(days=1, hours=1)
    points.advance_to(reissued_at)
    assert points.report(lapsed, 4_000, at=reissued_at).outcome is Outcome.GRANTED
    assert points.points.violations() == []


def test_a_report_dated_after_the_platforms_clock_is_refused_and_not_kept(
    points: PointsPlatform,
) -> None:
    person = points.person()
    points.advance_to(SEPT)
    ahead = points.report(person, 1000, at=SEPT + timedelta(days=30), transaction_id="t-late")
    assert (ahead.outcome, ahead.points) == (Outcome.FUTURE_DATED, 0)
    just_over = points.report(person, 1000, at=SEPT + timedelta(minutes=5, seconds=1))
    assert just_over.outcome is Outcome.FUTURE_DATED
    within = points.report(person, 1000, at=SEPT + timedelta(minutes=5))
    assert within.outcome is Outcome.GRANTED  # up to 5 minutes of operator clock skew
    # Not kept: once the platform's clock reaches it, the same report is decided afresh.
    points.advance_to(SEPT + timedelta(days=30))
    again = points.report(person, 1000, at=SEPT + timedelta(days=30), transaction_id="t-late")
    assert (again.outcome, again.replayed) == (Outcome.GRANTED, False)
    assert points.points.violations() == []


# --- the person: one cap, one choice, one bonus, across revoked IDs (issue 13) ----------------


def test_a_revoked_id_does_not_reset_the_cap_or_the_choice(points: PointsPlatform) -> None:
    """The reported defect: earn 5,000, revoke, reserve a new ID with the same card, apply with
    another payment account and earn 5,000 more. The entitlement is the person's."""
    person = points.person()
    points.advance_to(SEPT)
    assert points.report(person, 20_000).points == 5000
    first_id = person.mykey_id
    points.service.revoke(points.login_card(person.holder).token)
    assert points.report(person, 1000).outcome is Outcome.MYKEY_REVOKED  # no ID holds it now
    new_id = points.issue(person.holder).mykey_id
    assert new_id != first_id
    other = points.books.open_account("second account")
    with pytest.raises(PointsError) as second_choice:
        points.apply(person, account_id=other.account_id, security_code=other.security_code)
    assert second_choice.value.code == "already_applied"
    again = points.apply(person)  # the person's own choice, confirmed with the new ID
    assert (again.service_id, again.account_id) == (SERVICE, person.account_id)
    capped = points.report(person, 20_000)
    assert (capped.outcome, capped.points, capped.total_after) == (Outcome.CAPPED, 0, 5000)
    held = points.points.holder_points(points.login_card(person.holder).token)
    assert held.mykey_id == new_id
    assert held.points == {}  # the revoked ID's 5,000 stay unusable
    assert held.cap_used == {"spend": 5000}  # and still count against the person's cap
    assert [a.account_id for a in held.applications] == [person.account_id]
    assert points.points.violations() == []


def test_a_new_id_earns_what_is_left_of_the_persons_cap(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(SEPT)
    assert points.report(person, 12_000).points == 3000
    points.service.revoke(points.login_card(person.holder).token)
    points.issue(person.holder)
    later = points.report(person, 12_000)  # no re-application needed: the choice stands
    assert (later.outcome, later.points, later.total_after) == (Outcome.CAPPED, 2000, 5000)
    held = points.points.holder_points(points.login_card(person.holder).token)
    assert (held.points, held.cap_used) == ({"spend": 2000}, {"spend": 5000})
    # A refund of the charge the revoked ID earned takes back from the person's cap, not
    # from the new ID's points.
    first_tx = "tx-1"
    refund = points.report(person, 12_000, kind=TransactionKind.REFUND, refund_of=first_tx)
    assert (refund.outcome, refund.points, refund.total_after) == (Outcome.TAKEN_BACK, -3000, 2000)
    assert points.report(person, 8_000).points == 2000
    assert points.points.violations() == []


def test_a_round2_bonus_is_paid_once_per_person_across_ids(points: PointsPlatform) -> None:
    person = points.person()
    points.advance_to(ROUND2_DAY)
    points.register(person, "health_insurance", ROUND2_DAY.date())
    points.apply(person, campaign_id="round2")
    points.points.claim_bonus(points.card_proof(person.holder), "round2", "health_insurance")
    points.service.revoke(points.login_card(person.holder).token)
    points.issue(person.holder)
    with pytest.raises(PointsError) as twice:
        points.points.claim_bonus(points.card_proof(person.holder), "round2", "health_insurance")
    assert twice.value.code == "bonus_already_granted"
    assert points.points.violations() == []


def test_points_check_finds_a_person_over_the_cap(points: PointsPlatform) -> None:
    """What a platform that reset the cap on revocation would have written: two IDs of one
    person holding 5,000 each. The totals agree with the ledger per ID; the person does not."""
    from mynahil.reference_impl.points import LedgerEntry, LedgerKind

    person = points.person()
    points.advance_to(SEPT)
    points.report(person, 20_000)
    points.service.revoke(points.login_card(person.holder).token)
    points.issue(person.holder)
    held = points.points.holder_points(points.login_card(person.holder).token)
    with points.store.transaction() as uow:
        record = uow.record_by_mykey_id(held.mykey_id)
        assert record is not None
        uow.append_ledger([LedgerEntry(
            record.record_id, "spend", "round1", LedgerKind.GRANT, 5000, OPERATOR, SERVICE,
            person.account_id, "tx-second-cap", SEPT,
        )])  # fmt: skip
    problems = points.points.violations()
    assert any("over the cap" in p for p in problems), problems
