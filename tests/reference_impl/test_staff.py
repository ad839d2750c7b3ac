"""Staff credentials (issue #12 item 1): hashed bearer tokens with a role, on both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.staff import Role, StaffDirectory
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.tables import staff


@pytest.fixture
def directory(store: SqlStore) -> StaffDirectory:
    return StaffDirectory(store)


def test_a_token_authenticates_its_member_in_their_role(directory: StaffDirectory) -> None:
    member, token = directory.add("Hotline desk 3", Role.JLIS_HOTLINE)
    assert directory.authenticate(token, Role.JLIS_HOTLINE, Role.MUNICIPAL_WINDOW) == member
    assert member.name == "Hotline desk 3"
    assert member.role is Role.JLIS_HOTLINE


def test_only_the_tokens_hash_is_stored(directory: StaffDirectory, store: SqlStore) -> None:
    _member, token = directory.add("Window, Shibuya", "municipal-window")
    with store.engine.connect() as connection:
        rows = connection.execute(select(staff)).all()
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0])
    assert rows[0].token_hash != token
    assert all(token not in str(record.details) for record in store.audit_records())


@pytest.mark.parametrize(
    "token",
    [None, "", "mst_", "mst_" + "A" * 42, "mst_" + "é" * 43, "Bearer x", "mst_" + "A" * 43],
)
def test_no_malformed_or_unknown_token_gets_in(
    directory: StaffDirectory, store: SqlStore, token: str | None
) -> None:
    directory.add("Hotline desk 1", Role.JLIS_HOTLINE)
    before = sum(1 for _ in store.audit_records())
    with pytest.raises(MyKeyError) as refused:
        directory.authenticate(token, Role.JLIS_HOTLINE)
    assert refused.value.code == "staff_unauthenticated"
    # anonymous refusals cost no audit storage
    assert sum(1 for _ in store.audit_records()) == before


def test_another_role_is_refused_and_audited_with_who(
    directory: StaffDirectory, store: SqlStore
) -> None:
    member, token = directory.add("Help desk 7", Role.HELPDESK)
    with pytest.raises(MyKeyError) as refused:
        directory.authenticate(token, Role.JLIS_HOTLINE)
    assert refused.value.code == "staff_forbidden"
    last = list(store.audit_records())[-1]
    assert (last.action, last.outcome) == ("staff_forbidden", "refused:staff_forbidden")
    assert last.details["staff"] == {
        "id": member.staff_id,
        "name": "Help desk 7",
        "role": "helpdesk",
    }


def test_a_disabled_credential_stops_working(directory: StaffDirectory) -> None:
    member, token = directory.add("Hotline desk 2", Role.JLIS_HOTLINE)
    other, other_token = directory.add("Hotline desk 4", Role.JLIS_HOTLINE)
    assert directory.disable(member.staff_id).disabled_at is not None
    with pytest.raises(MyKeyError, match="staff credential"):
        directory.authenticate(token, Role.JLIS_HOTLINE)
    assert directory.authenticate(other_token, Role.JLIS_HOTLINE) == other
    with pytest.raises(LookupError):
        directory.disable(10_000)


def test_bad_names_and_roles_name_the_field(directory: StaffDirectory) -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        directory.add("x", "root")
    with pytest.raises(ValueError, match="name"):
        directory.add("  ", Role.HELPDESK)
    with pytest.raises(ValueError, match="name"):
        directory.add("a\x00b", Role.HELPDESK)


def test_operations_are_audited_with_who(directory: StaffDirectory, store: SqlStore) -> None:
    member, _token = directory.add("Window, Naha", Role.MUNICIPAL_WINDOW)
    with directory.operation(member, "something_done") as (_uow, _now, note):
        note["details"]["what"] = "it"
    with pytest.raises(MyKeyError), directory.operation(member, "something_refused"):
        raise MyKeyError("not_found", "no such thing")
    records = list(store.audit_records())
    done, refused = records[-2], records[-1]
    assert (done.action, done.outcome) == ("something_done", "ok")
    assert done.details == {"staff": member.audit_details(), "what": "it"}
    assert (refused.action, refused.outcome) == ("something_refused", "refused:not_found")
    assert refused.details["staff"] == member.audit_details()
    assert store.verify_audit()[1] is None


def test_adding_and_disabling_are_audited_once_each(
    directory: StaffDirectory, store: SqlStore
) -> None:
    before = len(list(store.audit_records()))
    member, _token = directory.add("Help desk 1", Role.HELPDESK)
    directory.disable(member.staff_id)
    with pytest.raises(LookupError):
        directory.disable(member.staff_id + 1000)  # unknown: nothing changed, nothing audited
    added, disabled = list(store.audit_records())[before:]
    assert (added.action, added.outcome, added.record_id) == ("staff_added", "ok", None)
    assert added.details == {"staff": member.audit_details()}
    assert (disabled.action, disabled.outcome) == ("staff_disabled", "ok")
    assert disabled.details == {"staff": member.audit_details()}
    assert store.verify_audit()[1] is None
