"""The help desk (seed 004): staff in role helpdesk stop a leaked MyKey ID (no login, no
application, no points) and restart it, each action audited with who and why; on each store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mynahil.reference_impl.helpdesk import HelpDesk
from mynahil.reference_impl.mykey import MyKeyError, MyKeyStatus
from mynahil.reference_impl.points import Outcome, PointsError
from mynahil.reference_impl.staff import Role, StaffDirectory
from tests.reference_impl.points.harness import PointsPlatform

SEPT = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
PAGE_PASSWORD = "Leaked-Pass-42"


def test_a_stopped_id_cannot_log_in_apply_or_earn_until_restarted(points: PointsPlatform) -> None:
    staff = StaffDirectory(points.store, clock=points.clock)
    desk, _token = staff.add("Help desk, Sato", Role.HELPDESK)
    helpdesk = HelpDesk(staff)
    person = points.person()
    points.advance_to(SEPT)
    session = points.login_card(person.holder).token
    points.service.set_password(session, PAGE_PASSWORD)
    assert points.report(person, 4000).outcome is Outcome.GRANTED

    stopped = helpdesk.stop(desk, person.mykey_id, "holder reports the page password leaked")
    assert stopped.status is MyKeyStatus.STOPPED
    for attempt in (
        lambda: points.login_card(person.holder),
        lambda: points.service.login_with_password(person.mykey_id, PAGE_PASSWORD),
        lambda: points.service.show_mykey_id(session),  # the sessions ended with the stop
        lambda: points.apply(person, campaign_id="round1"),
        lambda: points.issue(person.holder),  # no second ID for the same card meanwhile
    ):
        with pytest.raises(MyKeyError) as refused:
            attempt()
        assert refused.value.code in {"mykey_id_stopped", "session_invalid"}
    with pytest.raises(MyKeyError) as told_why:
        points.login_card(person.holder)
    assert told_why.value.code == "mykey_id_stopped"
    assert "help desk" in str(told_why.value)
    with pytest.raises(MyKeyError) as wrong_password:  # nothing told to who lacks the password
        points.service.login_with_password(person.mykey_id, PAGE_PASSWORD + "x")
    assert wrong_password.value.code == "login_failed"
    refused_charge = points.report(person, 4000)
    assert (refused_charge.outcome, refused_charge.points) == (Outcome.MYKEY_ID_STOPPED, 0)

    helpdesk.restart(desk, person.mykey_id, "investigated: the holder changed the password")
    points.service.login_with_password(person.mykey_id, PAGE_PASSWORD)
    assert points.report(person, 4000).outcome is Outcome.GRANTED
    assert points.points.violations() == []

    audited = [r for r in points.store.audit_records() if r.action.startswith("helpdesk_")]
    assert [(r.action, r.outcome, r.details["staff"]["name"], r.details["reason"])
            for r in audited] == [
        ("helpdesk_stop", "ok", "Help desk, Sato", "holder reports the page password leaked"),
        ("helpdesk_restart", "ok", "Help desk, Sato",
         "investigated: the holder changed the password"),
    ]  # fmt: skip


def test_only_the_help_desk_stops_and_always_says_why(points: PointsPlatform) -> None:
    staff = StaffDirectory(points.store, clock=points.clock)
    desk, _ = staff.add("Help desk, Sato", Role.HELPDESK)
    hotline, _ = staff.add("Hotline 3", Role.JLIS_HOTLINE)
    helpdesk = HelpDesk(staff)
    person = points.person(apply=False)
    cases = [
        (hotline, person.mykey_id, "leak", "staff_forbidden"),
        (desk, person.mykey_id, "   ", "invalid_request"),
        (desk, "ABCD2345", "leak", "mykey_not_found"),
        (desk, "not an id!", "leak", "mykey_id_invalid"),
    ]
    for member, mykey_id, reason, code in cases:
        with pytest.raises(MyKeyError) as refused:
            helpdesk.stop(member, mykey_id, reason)
        assert refused.value.code == code, (mykey_id, reason)
    with pytest.raises(MyKeyError) as active:
        helpdesk.restart(desk, person.mykey_id, "nothing to restart")
    assert active.value.code == "mykey_id_already_active"
    helpdesk.stop(desk, person.mykey_id, "leak reported")
    with pytest.raises(MyKeyError) as twice:
        helpdesk.stop(desk, person.mykey_id, "again")
    assert twice.value.code == "mykey_id_already_stopped"
    refusals = [r for r in points.store.audit_records() if r.action == "helpdesk_stop"]
    assert [r.outcome for r in refusals][:2] == [
        "refused:staff_forbidden",
        "refused:invalid_request",
    ]
    assert refusals[0].details["staff"]["name"] == "Hotline 3"


def test_a_person_with_a_stopped_id_cannot_escape_by_revoking(points: PointsPlatform) -> None:
    """Revocation needs a card login, which a stopped ID does not get: no new ID, no new cap."""
    staff = StaffDirectory(points.store, clock=points.clock)
    desk, _ = staff.add("Help desk", Role.HELPDESK)
    person = points.person()
    HelpDesk(staff).stop(desk, person.mykey_id, "leak")
    with pytest.raises(MyKeyError) as refused:
        points.login_card(person.holder)
    assert refused.value.code == "mykey_id_stopped"
    with pytest.raises((MyKeyError, PointsError)):
        points.apply(person)
