"""Staff credentials: who may change state that no cardholder or operator owns.

The one place that decides whether a caller is a member of the platform's own staff, and in
which role. The J-LIS lost-card hotline and the municipal window (which revoke certificates)
and the MyKey help desk are staff; cardholders log in with their card, operators sign their
requests (:mod:`mynahil.reference_impl.points.signing`).

Interface (what an endpoint or a command uses):

- :class:`Role`: ``jlis-hotline``, ``municipal-window``, ``helpdesk``.
- :meth:`StaffDirectory.add` makes a member and returns their bearer token, once: only its
  SHA-256 is stored (the token holds 256 random bits, so a fast hash is enough; a stolen
  database yields no usable token). ``mynahil staff add --role … --name …`` calls it.
- :meth:`StaffDirectory.authenticate` ``(token, *roles)`` → :class:`StaffMember`, or raises
  :class:`~mynahil.reference_impl.mykey.MyKeyError` ``staff_unauthenticated`` (no, malformed,
  unknown or disabled token: HTTP 401) or ``staff_forbidden`` (a real member whose role is not among
  ``roles``: HTTP 403, audited with who asked). Refusals without a valid token are not
  audited, so anonymous callers cannot grow the audit log.
- :meth:`StaffDirectory.operation` ``(member, action)`` → ``(uow, now, note)``: the audited
  transaction a staff operation runs in (:func:`mynahil.reference_impl.audited.audited_operation`,
  as every MyKey and points operation): one audit record, success or refusal (a
  :class:`~mynahil.reference_impl.mykey.MyKeyError` raised in the block is audited, committed,
  then raised), naming the member in ``details.staff`` (id, name, role);
  the block adds its own details to ``note["details"]``. ``now`` is the business clock.
- Over HTTP, :func:`mynahil.reference_impl.api.staff.require_staff` is the FastAPI dependency that
  reads ``Authorization: Bearer <token>`` and calls :meth:`~StaffDirectory.authenticate`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from mynahil.reference_impl.audited import audited_operation
from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.mykey.ports import UnitOfWork

__all__ = [
    "MAX_NAME_LENGTH",
    "Role",
    "StaffDirectory",
    "StaffMember",
    "StaffStore",
    "StaffUnitOfWork",
    "staff_token_hash",
]

TOKEN_PREFIX: Final = "mst_"
_TOKEN: Final = re.compile(r"mst_[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters
MAX_NAME_LENGTH: Final = 128


class Role(StrEnum):
    """What a staff member may do."""

    JLIS_HOTLINE = "jlis-hotline"  # the lost-card hotline: suspends certificates
    MUNICIPAL_WINDOW = "municipal-window"  # the window: suspends certificates, and more
    HELPDESK = "helpdesk"  # the MyKey help desk


@dataclass(frozen=True, slots=True)
class StaffMember:
    staff_id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None

    def audit_details(self) -> dict[str, Any]:
        """How an audit record names this member."""
        return {"id": self.staff_id, "name": self.name, "role": self.role.value}


class StaffUnitOfWork(UnitOfWork, Protocol):
    """The store's staff table, in one transaction."""

    def add_staff(self, name: str, role: Role, token_hash: str, now: datetime) -> StaffMember: ...
    def staff_by_token_hash(self, token_hash: str) -> StaffMember | None: ...
    def all_staff(self) -> list[StaffMember]: ...
    def disable_staff(self, staff_id: int, now: datetime) -> StaffMember | None:
        """Disable for good (idempotent); None for an unknown id."""
        ...


class StaffStore(Protocol):
    def transaction(self) -> AbstractContextManager[StaffUnitOfWork]: ...


def staff_token_hash(token: str) -> str:
    """What the store keeps of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _clean_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH or not cleaned.isprintable():
        raise ValueError(f"the staff member's name has 1 to {MAX_NAME_LENGTH} printable characters")
    return cleaned


class StaffDirectory:
    """Staff members and their credentials (see the module docstring for the interface)."""

    def __init__(self, store: StaffStore, *, clock: Callable[[], datetime] = _wall_clock) -> None:
        self.store = store
        self.clock = clock  # the platform's business clock (serve --as-of)

    def add(self, name: str, role: Role | str) -> tuple[StaffMember, str]:
        """A new member and their token (shown once, never stored). ValueError names the
        bad field (``name``, ``role``)."""
        try:
            role = Role(role)
        except ValueError:
            raise ValueError(
                f"role must be one of {', '.join(r.value for r in Role)}, not {role!r}"
            ) from None
        name = _clean_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with audited_operation(self.store, "staff_added", self.clock()) as (uow, now, note):
            member = uow.add_staff(name, role, staff_token_hash(token), now)
            note["details"]["staff"] = member.audit_details()
        return member, token

    def disable(self, staff_id: int) -> StaffMember:
        """Disable a member's credential for good; LookupError for an unknown id."""
        # LookupError is no refusal: the transaction rolls back unaudited, nothing changed.
        with audited_operation(self.store, "staff_disabled", self.clock()) as (uow, now, note):
            member = uow.disable_staff(staff_id, now)
            if member is None:
                raise LookupError(f"no staff member {staff_id}")
            note["details"]["staff"] = member.audit_details()
        return member

    def members(self) -> list[StaffMember]:
        with self.store.transaction() as uow:
            return uow.all_staff()

    def authenticate(self, token: str | None, *roles: Role) -> StaffMember:
        """The active member holding ``token`` if their role is one of ``roles``.

        Raises ``staff_unauthenticated`` (not audited) or ``staff_forbidden`` (audited as
        ``staff_forbidden`` with who). A malformed token is never hashed or looked up.
        """
        if token is None or not _TOKEN.fullmatch(token):
            raise _unauthenticated()
        with self.store.transaction() as uow:
            member = uow.staff_by_token_hash(staff_token_hash(token))
        if member is None or member.disabled_at is not None:
            raise _unauthenticated()
        if roles and member.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            with self.operation(member, "staff_forbidden") as (_uow, _now, note):
                note["details"]["needs"] = allowed
                raise MyKeyError("staff_forbidden", f"this needs a staff member in role {allowed}")
        return member

    @contextmanager
    def operation(
        self, member: StaffMember, action: str
    ) -> Iterator[tuple[StaffUnitOfWork, datetime, dict[str, Any]]]:
        """An audited operation (the refusal a body raises is audited too) whose audit record
        names ``member``."""
        with audited_operation(self.store, action, self.clock()) as (uow, now, note):
            note["details"]["staff"] = member.audit_details()
            yield uow, now, note


def _unauthenticated() -> MyKeyError:
    return MyKeyError(
        "staff_unauthenticated",
        "this needs a staff credential: send 'Authorization: Bearer <token>' "
        "(made with: mynahil staff add)",
    )
