"""Any sequence of applications, charges, refunds and retries, revocations and new MyKey IDs,
certificate renewals, reissued cards and help-desk stops, for several people, keeps every
person's points equal to the rule's answer and never above the cap (hypothesis, stateful).

The model below restates the rules independently: 25% floored per charge, clipped by what is
left of the *person's* 5,000 yen, whichever of their MyKey IDs is current; a refund leaves a
charge the points its remaining amount earns, never more than it held; a person whose ID was
revoked and who has no new one earns nothing (mykey_revoked), nor does one whose ID the help
desk stopped (mykey_id_stopped); the choice of service is made once per person. (Certificate
expiry needs dates years apart and is checked in test_service.py.)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reference_impl.helpdesk import HelpDesk
from reference_impl.jlis import JlisCA, KeyPool
from reference_impl.points import Decision, Outcome, PointsError, TransactionKind
from reference_impl.staff import Role, StaffDirectory
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
    live: set[int] = field(default_factory=lambda: {0, 1, 2})  # a MyKey ID that is not revoked
    stopped: set[int] = field(default_factory=set)  # by the help desk
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
        self.first_ids = [p.mykey_id for p in self.people]
        self.model = Model()
        self.serial = 0
        staff = StaffDirectory(self.store, clock=self.platform.clock)
        self.desk, _token = staff.add("State machine help desk", Role.HELPDESK)
        self.helpdesk = HelpDesk(staff)
        self.platform.advance_to(SEPT)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.dispose()

    def _usable(self, who: int) -> bool:
        return who in self.model.live and who not in self.model.stopped

    @rule(who=st.integers(0, 2))
    def apply(self, who: int) -> None:
        if not self._usable(who):
            return
        # At the clock's time (round 1 takes applications in September too), so a certificate
        # renewed today is valid; charges reported from now on count.
        self.platform.apply(self.people[who])  # again: the person's choice comes back
        self.model.applied.add(who)

    @rule(who=st.integers(0, 2))
    def second_choice(self, who: int) -> None:
        """Another payment account, with whatever ID the person has now: never a second one."""
        if not self._usable(who) or who not in self.model.applied:
            return
        other = self.platform.books.open_account("second choice")
        with pytest.raises(PointsError) as refused:
            self.platform.apply(
                self.people[who], account_id=other.account_id, security_code=other.security_code
            )
        assert refused.value.code == "already_applied"

    @rule(who=st.integers(0, 2))
    def revoke(self, who: int) -> None:
        if not self._usable(who):
            return
        person = self.people[who]
        self.platform.service.revoke(self.platform.login_card(person.holder).token)
        self.model.live.discard(who)

    @rule(who=st.integers(0, 2))
    def new_id(self, who: int) -> None:
        """Reserve with the person's card: a new ID after a revocation, else the same one."""
        if who in self.model.stopped:
            return
        person = self.people[who]
        result = self.platform.issue(person.holder)
        assert result.created == (who not in self.model.live)
        person.mykey_id = result.mykey_id
        self.model.live.add(who)

    @rule(who=st.integers(0, 2), reissue=st.booleans())
    def new_certificate(self, who: int, reissue: bool) -> None:
        """A renewed certificate or a reissued card: the same person, the same ID if live."""
        person = self.people[who]
        if reissue:
            self.platform.reissue(person.holder)
        else:
            self.platform.renew(person.holder)
        if self._usable(who):
            assert self.platform.issue(person.holder).mykey_id == person.mykey_id

    @rule(who=st.integers(0, 2))
    def helpdesk_stop(self, who: int) -> None:
        if not self._usable(who):
            return
        self.helpdesk.stop(self.desk, self.people[who].mykey_id, "a leak, reported by phone")
        self.model.stopped.add(who)

    @rule(who=st.integers(0, 2))
    def helpdesk_restart(self, who: int) -> None:
        if who not in self.model.stopped:
            return
        self.helpdesk.restart(self.desk, self.people[who].mykey_id, "investigated")
        self.model.stopped.discard(who)

    @rule(who=st.integers(0, 2), amount=st.integers(1, 30_000))
    def charge(self, who: int, amount: int) -> None:
        self.serial += 1
        tx = f"c{self.serial}"
        decision = self.platform.report(self.people[who], amount, transaction_id=tx)
        if who not in self.model.applied:
            assert decision.outcome is Outcome.NO_APPLICATION
            assert decision.points == 0
        elif who not in self.model.live:
            assert (decision.outcome, decision.points) == (Outcome.MYKEY_REVOKED, 0)
        elif who in self.model.stopped:
            assert (decision.outcome, decision.points) == (Outcome.MYKEY_ID_STOPPED, 0)
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
        points = self.platform.points
        for who, first_id in enumerate(self.first_ids):
            with self.store.transaction() as uow:
                record = uow.record_by_mykey_id(first_id)  # revoked or not: the same person
            assert record is not None
            assert record.person_id is not None
            by_person[who] = held.get(record.person_id, 0)
        for who in range(3):
            assert by_person[who] == self.model.totals.get(who, 0)
            assert 0 <= by_person[who] <= CAP
        assert points.violations() == []


PointsMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_points_state_machine = PointsMachine.TestCase
