"""Any sequence of applications, charges, refunds and retries, revocations and new MyKey IDs,
certificate renewals, reissued cards, expiring certificates (time passes, over a year of the
campaign) and help-desk stops and restarts, for several people, keeps every person's points
equal to the rule's answer and never above the cap (hypothesis, stateful).

The model below restates the rules independently of the platform's code: 25% floored per charge,
clipped by what is left of the *person's* 5,000 yen, whichever of their MyKey IDs is current; a
refund leaves a charge the points its remaining amount earns, never more than it held; a person
whose ID was revoked and who has no new one earns nothing (mykey_revoked), nor does one whose ID
the help desk stopped (mykey_id_stopped); the choice of service is made once per person.
Certificates (SPEC, seed 000/004): a card's first runs from its issue day to the holder's 5th
birthday after it, a renewal to the card's own expiry (the 10th birthday after the card was
issued) however early it was renewed, both days included; a charge made on a day no certificate
of the person covered earns nothing (certificate_expired), renewed or reissued ones count from
their day whether or not the card was shown to the platform since, and an expired card cannot
apply, revoke or reserve.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mynahil.reference_impl.helpdesk import HelpDesk
from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.points import Decision, Outcome, Report, TransactionKind
from mynahil.reference_impl.staff import Role, StaffDirectory
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.points.harness import START, Person, PointsPlatform
from tests.support import examples

CAP = 5000
SEPT = datetime(2020, 9, 15, 3, 0, tzinfo=UTC)  # noon in Japan: every step happens at noon
LAST = datetime(2021, 12, 20, 3, 0, tzinfo=UTC)  # inside the extension these cards have
CARDS_ISSUED = date(2016, 6, 1)  # the first certificates lapse during the campaign:
BIRTHS = (
    date(1980, 10, 1),
    date(1975, 12, 10),
    date(1990, 2, 15),
)  # 2020-10-01, -12-10, 2021-02-15
_shared: dict[str, object] = {}


def nth_birthday_after(birth: date, day: date, n: int) -> date:
    """The model's own count (these births avoid 29 February): the first birthday strictly
    after ``day``, and n - 1 more."""
    year = day.year if birth.replace(year=day.year) > day else day.year + 1
    return birth.replace(year=year + n - 1)


@dataclass
class Holder:
    """What J-LIS issued to one person, as the model counts it."""

    birth: date
    card_issued: date = CARDS_ISSUED
    windows: list[tuple[date, date]] = field(default_factory=list)  # first and last valid day
    shown: int = 1  # how many of ``windows`` the platform has seen on a presented card

    def __post_init__(self) -> None:
        self.windows.append((self.card_issued, nth_birthday_after(self.birth, self.card_issued, 5)))

    def covered(self, day: date) -> bool:
        return any(first <= day <= last for first, last in self.windows)

    def covered_by_shown(self, day: date) -> bool:
        return any(first <= day <= last for first, last in self.windows[: self.shown])

    def card_valid(self, day: date) -> bool:
        """The certificate on the card in the holder's hand (the latest) is valid."""
        first, last = self.windows[-1]
        return first <= day <= last

    def renew(self, day: date) -> None:
        self.windows.append((day, nth_birthday_after(self.birth, self.card_issued, 10)))

    def reissue(self, day: date) -> None:
        self.card_issued = day
        self.windows.append((day, nth_birthday_after(self.birth, day, 5)))


def _fixtures() -> tuple[JlisCA, KeyPool]:
    if not _shared:
        folder = Path(tempfile.mkdtemp(prefix="points-sm-"))
        _shared["ca"] = JlisCA.create(folder / "ca")
        _shared["keys"] = KeyPool.generate(2, seed=5, cache_dir=folder / "keys")
        template = folder / "migrated.db"
        SqlStore.open(f"sqlite:///{template}").dispose()
        _shared["template"] = template
    return _shared["ca"], _shared["keys"]  # type: ignore[return-value]


def _fresh_store() -> SqlStore:
    """An in-memory store with the whole schema, copied from one migrated once: running the
    migrations for every example was half of each example's time."""
    store = SqlStore.open("sqlite://", migrate=False)
    connection = store.engine.raw_connection()
    try:
        target = connection.driver_connection
        assert isinstance(target, sqlite3.Connection)
        with sqlite3.connect(str(_shared["template"])) as template:
            template.backup(target)
    finally:
        connection.close()
    return store


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
    holders: list[Holder] = field(default_factory=lambda: [Holder(b) for b in BIRTHS])
    today: date = date(2020, 9, 15)  # SEPT's day


class PointsMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        ca, keys = _fixtures()
        self.store = _fresh_store()
        self.platform = PointsPlatform(self.store, ca, keys)
        self.platform.advance_to(START)
        # Two of the three have applied already (so most runs earn, refund and lapse); the
        # third applies, or has its charges refused, as the run goes.
        self.people: list[Person] = [
            self.platform.person(apply=who < 2, born=birth, issued_on=CARDS_ISSUED)
            for who, birth in enumerate(BIRTHS)
        ]
        self.first_ids = [p.mykey_id for p in self.people]
        self.model = Model(applied={0, 1})
        self.reached: set[str] = set()  # what this run got to (see _note)
        self.serial = 0
        staff = StaffDirectory(self.store, clock=self.platform.clock)
        self.desk, _token = staff.add("State machine help desk", Role.HELPDESK)
        self.helpdesk = HelpDesk(staff)
        self.platform.advance_to(SEPT)

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.dispose()

    def _note(self, what: str) -> None:
        """A state the run reached: kept for a targeted test, and a hypothesis event (its
        statistics show how often the runs get there)."""
        self.reached.add(what)
        if currently_in_test_context():
            event(what)

    def _usable(self, who: int) -> bool:
        return who in self.model.live and who not in self.model.stopped

    def _card_expired(self, who: int) -> bool:
        """Whether the card in the person's hand has an expired certificate: then every card
        operation is refused as certificate_expired (and the card is not shown)."""
        if self.model.holders[who].card_valid(self.model.today):
            return False
        self._note("a card operation with an expired certificate")
        return True

    def _shown(self, who: int) -> None:
        holder = self.model.holders[who]
        holder.shown = len(holder.windows)

    @rule(who=st.integers(0, 2))
    def apply(self, who: int) -> None:
        if not self._usable(who):
            return
        if self._card_expired(who):
            with pytest.raises(MyKeyError) as refused:
                self.platform.apply(self.people[who])
            assert refused.value.code == "certificate_expired"
            return
        # At the clock's time (the campaign takes applications all along), so charges
        # reported from now on count.
        self.platform.apply(self.people[who])  # again: the person's choice comes back
        self.model.applied.add(who)
        self._shown(who)

    @rule(who=st.integers(0, 2))
    def second_choice(self, who: int) -> None:
        """Another payment account, with whatever ID the person has now: never a second one."""
        if not self._usable(who) or who not in self.model.applied:
            return
        other = self.platform.books.open_account("second choice")
        with pytest.raises(MyKeyError) as refused:  # PointsError is one
            self.platform.apply(
                self.people[who], account_id=other.account_id, security_code=other.security_code
            )
        expected = "certificate_expired" if self._card_expired(who) else "already_applied"
        assert refused.value.code == expected

    @rule(who=st.integers(0, 2))
    def revoke(self, who: int) -> None:
        if not self._usable(who):
            return
        person = self.people[who]
        if self._card_expired(who):  # revoking needs a card login
            with pytest.raises(MyKeyError) as refused:
                self.platform.login_card(person.holder)
            assert refused.value.code == "certificate_expired"
            return
        self.platform.service.revoke(self.platform.login_card(person.holder).token)
        self.model.live.discard(who)
        self._shown(who)

    @rule(who=st.integers(0, 2))
    def new_id(self, who: int) -> None:
        """Reserve with the person's card: a new ID after a revocation, else the same one."""
        if who in self.model.stopped:
            return
        person = self.people[who]
        if self._card_expired(who):
            with pytest.raises(MyKeyError) as refused:
                self.platform.issue(person.holder)
            assert refused.value.code == "certificate_expired"
            return
        result = self.platform.issue(person.holder)
        assert result.created == (who not in self.model.live)
        person.mykey_id = result.mykey_id
        self.model.live.add(who)
        self._shown(who)

    @rule(who=st.integers(0, 2), reissue=st.booleans(), show=st.booleans())
    def new_certificate(self, who: int, reissue: bool, show: bool) -> None:
        """A renewed certificate or a reissued card at the window: the same person, the same
        ID if live. The platform is told only if the holder shows the new card (``show``)."""
        person, holder = self.people[who], self.model.holders[who]
        if reissue:
            self.platform.reissue(person.holder)
            holder.reissue(self.model.today)
        else:
            self.platform.renew(person.holder)
            holder.renew(self.model.today)
        if show and self._usable(who):
            assert self.platform.issue(person.holder).mykey_id == person.mykey_id
            self._shown(who)

    @rule(days=st.integers(1, 75))
    def time_passes(self, days: int) -> None:
        """Certificates lapse as the campaign goes on (never past its last day)."""
        moment = min(self.platform.clock.now + timedelta(days=days), LAST)
        before = self.model.today
        self.platform.advance_to(moment)
        self.model.today = moment.date()
        for holder in self.model.holders:
            if holder.covered(before) and not holder.covered(self.model.today):
                self._note("a certificate expired")

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
        elif not self.model.holders[who].covered(self.model.today):
            assert (decision.outcome, decision.points) == (Outcome.CERTIFICATE_EXPIRED, 0)
        else:
            if not self.model.holders[who].covered_by_shown(self.model.today):
                self._note("a charge earns on a renewal only J-LIS told the platform of")
            held = self.model.totals.get(who, 0)
            expected = min(amount * 25 // 100, CAP - held)
            assert decision.points == expected
            self.model.totals[who] = held + expected
            self.model.charges[tx] = Charge(who, amount, expected)
        self._note(f"charge: {decision.outcome.value}")
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
    max_examples=examples(20),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_points_state_machine = PointsMachine.TestCase


def test_the_machine_reaches_expiry_renewals_reissues_and_stops() -> None:
    """The machine's own rules, in an order that visits every state the random runs may miss:
    each step still checks the platform against the model."""
    machine = PointsMachine()
    try:
        machine.start()
        machine.charge(who=0, amount=4000)  # September: granted
        machine.time_passes(days=30)  # 2020-10-15: person 0's certificate lapsed on 10-01
        machine.charge(who=0, amount=4000)  # certificate_expired
        machine.apply(who=0)  # an expired card cannot apply,
        machine.second_choice(who=0)
        machine.revoke(who=0)  # nor log in to revoke,
        machine.new_id(who=0)  # nor reserve
        machine.new_certificate(who=0, reissue=False, show=False)  # renewed at the window
        machine.charge(who=0, amount=4000)  # granted: J-LIS told the platform
        machine.helpdesk_stop(who=0)
        machine.charge(who=0, amount=4000)  # mykey_id_stopped
        machine.helpdesk_restart(who=0)
        machine.charge(who=2, amount=4000)  # no_application
        machine.time_passes(days=60)  # 2020-12-14: person 1's lapsed on 12-10
        machine.charge(who=1, amount=4000)  # certificate_expired
        machine.new_certificate(who=1, reissue=True, show=True)  # a new card, shown
        machine.charge(who=1, amount=30000)  # capped at what is left of 5,000
        machine.revoke(who=1)
        machine.charge(who=1, amount=4000)  # mykey_revoked
        machine.new_id(who=1)  # the same person: no second cap
        machine.charge(who=1, amount=4000)
        machine.totals_match_the_rule_and_the_cap()
    finally:
        machine.teardown()
    assert {
        "a certificate expired",
        "a card operation with an expired certificate",
        "a charge earns on a renewal only J-LIS told the platform of",
        "charge: granted",
        "charge: capped",
        "charge: certificate_expired",
        "charge: mykey_id_stopped",
        "charge: mykey_revoked",
        "charge: no_application",
    } <= machine.reached, machine.reached
