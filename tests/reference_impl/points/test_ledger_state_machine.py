"""Any sequence of applications, charges, refunds and retries, for several people, keeps every
person's points equal to the rule's answer and never above the cap (hypothesis, stateful).

The model below restates the rule independently: 25% floored per charge, clipped by what is
left of 5,000 yen; a refund leaves a charge the points its remaining amount earns, never more
than it held.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reference_impl.jlis import JlisCA, KeyPool
from reference_impl.points import Decision, Outcome, TransactionKind
from reference_impl.store import SqlStore
from tests.reference_impl.points.harness import START, Person, PointsPlatform

CAP = 5000
SEPT = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)
_shared: dict[str, object] = {}


def _fixtures() -> tuple[JlisCA, KeyPool]:
    if not _shared:
        folder = Path(tempfile.mkdtemp(prefix="points-sm-"))
        _shared["ca"] = JlisCA.create(folder / "ca")
        _shared["keys"] = KeyPool.generate(2, seed=5, cache_dir=folder / "keys")
    return _shared["ca"], _shared["keys"]  # type: ignore[return-value]


@dataclass
class Charge:
    person: int
    amount: int
    net: int
    refunded: int = 0


@dataclass
class Model:
    applied: set[int] = field(default_factory=set)
    totals: dict[int, int] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    answers: dict[str, Decision] = field(default_factory=dict)


class PointsMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        ca, keys = _fixtures()
        self.store = SqlStore.open("sqlite://")
        self.platform = PointsPlatform(self.store, ca, keys)
        self.platform.advance_to(START)
        self.people: list[Person] = [self.platform.person(apply=False) for _ in range(3)]
        self.model = Model()
        self.serial = 0
        self.platform.advance_to(SEPT)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.dispose()

    @rule(who=st.integers(0, 2))
    def apply(self, who: int) -> None:
        saved = self.platform.clock.now
        self.platform.advance_to(START + timedelta(minutes=len(self.model.applied)))
        self.platform.apply(self.people[who])
        self.platform.advance_to(saved)
        self.model.applied.add(who)

    @rule(who=st.integers(0, 2), amount=st.integers(1, 30_000))
    def charge(self, who: int, amount: int) -> None:
        self.serial += 1
        tx = f"c{self.serial}"
        decision = self.platform.report(self.people[who], amount, transaction_id=tx)
        if who not in self.model.applied:
            assert decision.outcome is Outcome.NO_APPLICATION
            assert decision.points == 0
        else:
            held = self.model.totals.get(who, 0)
            expected = min(amount * 25 // 100, CAP - held)
            assert decision.points == expected
            self.model.totals[who] = held + expected
            self.model.charges[tx] = Charge(who, amount, expected)
        self.model.answers[f"key-{tx}"] = decision

    @precondition(lambda self: bool(self.model.charges))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        tx = data.draw(st.sampled_from(sorted(self.model.charges)))
        charge = self.model.charges[tx]
        amount = data.draw(st.integers(1, charge.amount))
        self.serial += 1
        decision = self.platform.report(
            self.people[charge.person], amount, kind=TransactionKind.REFUND, refund_of=tx,
            transaction_id=f"r{self.serial}",
        )  # fmt: skip
        if charge.refunded + amount > charge.amount:
            assert decision.outcome is Outcome.REFUND_EXCEEDS_ORIGINAL
            return
        keeps = min(charge.net, (charge.amount - charge.refunded - amount) * 25 // 100)
        assert decision.points == keeps - charge.net
        self.model.totals[charge.person] -= charge.net - keeps
        charge.net, charge.refunded = keeps, charge.refunded + amount
        self.model.answers[f"key-r{self.serial}"] = decision

    @precondition(lambda self: bool(self.model.charges))
    @rule(data=st.data())
    def refund_elsewhere(self, data: st.DataObject) -> None:
        """A refund reported on another person's account: refused, nothing moves (#12)."""
        tx = data.draw(st.sampled_from(sorted(self.model.charges)))
        charge = self.model.charges[tx]
        other = data.draw(st.sampled_from([p for p in range(3) if p != charge.person]))
        self.serial += 1
        decision = self.platform.report(
            self.people[other], 1, kind=TransactionKind.REFUND, refund_of=tx,
            transaction_id=f"r{self.serial}",
        )  # fmt: skip
        assert (decision.outcome, decision.points) == (Outcome.REFUND_ACCOUNT_MISMATCH, 0)
        self.model.answers[f"key-r{self.serial}"] = decision

    @precondition(lambda self: bool(self.model.answers))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """An operator resends a report it already sent: the first answer, nothing granted."""
        key = data.draw(st.sampled_from(sorted(self.model.answers)))
        first = self.model.answers[key]
        with self.store.transaction() as uow:
            stored = uow.transactions_by_key("paypay-like", {key})[key]
        from reference_impl.points import Report

        again = self.platform.points.report(
            "paypay-like",
            [
                Report(
                    key, stored.transaction_id, stored.service_id, stored.account_id,
                    stored.kind, stored.amount, stored.occurred_at,
                    stored.original_transaction_id,
                )
            ],
        )[0]  # fmt: skip
        assert (again.outcome, again.points, again.total_after) == (
            first.outcome, first.points, first.total_after,
        )  # fmt: skip
        assert again.replayed

    @invariant()
    def totals_match_the_rule_and_the_cap(self) -> None:
        if not hasattr(self, "store"):
            return
        with self.store.transaction() as uow:
            held = {r: p for (r, _g), p in uow.all_totals().items()}
        by_person = {}
        for who, person in enumerate(self.people):
            points = self.platform.points
            with self.store.transaction() as uow:
                record = uow.record_by_mykey_id(person.mykey_id)
            assert record is not None
            by_person[who] = held.get(record.record_id, 0)
        for who in range(3):
            assert by_person[who] == self.model.totals.get(who, 0)
            assert 0 <= by_person[who] <= CAP
        assert points.violations() == []


PointsMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_points_state_machine = PointsMachine.TestCase
