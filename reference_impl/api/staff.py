"""Staff credentials over HTTP: the one FastAPI dependency every staff-only endpoint uses.

Usage, in a router::

    from mynahil.reference_impl.mykey import MyKeyError
from mynahil.reference_impl.staff import Role, StaffMember
    from .staff import require_staff, staff_directory

    Hotline = Annotated[StaffMember, Depends(require_staff(Role.JLIS_HOTLINE))]

    @router.post("/…")
    def act(member: Hotline, directory: Annotated[StaffDirectory, Depends(staff_directory)]):
        with directory.operation(member, "my_action") as (uow, now, note):
            ...  # audited with who did it, success or refusal

The caller sends ``Authorization: Bearer <token>`` (``mynahil staff add`` prints one).
No, a malformed or an unknown token answers 401 ``staff_unauthenticated`` (with
``WWW-Authenticate: Bearer``); a real member in another role 403 ``staff_forbidden``.
The rules are :meth:`mynahil.reference_impl.staff.StaffDirectory.authenticate`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from mynahil.reference_impl.mykey.errors import MyKeyError
from mynahil.reference_impl.staff import Role, StaffDirectory, StaffMember

__all__ = ["require_staff", "staff_directory"]


async def staff_directory(request: Request) -> StaffDirectory:
    directory: StaffDirectory | None = request.app.state.staff
    if directory is None:
        raise MyKeyError("staff_unauthenticated", "this platform was built without staff")
    return directory


def _token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def require_staff(*roles: Role) -> Callable[..., Coroutine[Any, Any, StaffMember]]:
    """A dependency giving the authenticated :class:`StaffMember` in one of ``roles``."""
    if not roles:
        raise ValueError("name at least one role")

    async def member(
        request: Request, directory: Annotated[StaffDirectory, Depends(staff_directory)]
    ) -> StaffMember:
        # The store is blocking: off the event loop, like a sync endpoint.
        return await run_in_threadpool(directory.authenticate, _token(request), *roles)

    return member
