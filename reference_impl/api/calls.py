"""Where the holders' hot service calls run: on the event loop, or in a worker thread.

A service call is blocking (the store is synchronous), so FastAPI's way is a worker thread.
Where the store takes one writer at a time (SQLite), the thread adds no concurrency, only the
hand-off: the thread and the event loop then trade the GIL at every statement (SQLite lets it
go while it runs one), which cost ~0.9 ms of CPU per issuance, twice what the issuance itself
costs (``benchmarks/bench_mykey.py``). There, a call runs on the event loop when the writer is
free at that moment, and in a thread when another thread or process is writing (a long
report batch, an admin command), so the loop never waits behind one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from mynahil.reference_impl.mykey.ports import WriterBusy

__all__ = ["ServiceCalls", "run_call"]

_Result = TypeVar("_Result")


class ServiceCalls:
    """Runs service calls; ``not_waiting`` (the store's, where it has one writer) makes its
    first transaction raise :class:`WriterBusy` instead of waiting, and the call then goes to a
    thread. Without it every call goes to a thread."""

    def __init__(
        self, not_waiting: Callable[[], AbstractContextManager[object]] | None = None
    ) -> None:
        self._not_waiting = not_waiting

    async def run(self, call: Callable[[], _Result]) -> _Result:
        if self._not_waiting is not None:
            try:
                with self._not_waiting():
                    return call()
            except WriterBusy:
                pass  # nothing was done: the thread below does it, waiting its turn
        return await run_in_threadpool(call)


_IN_THREADS = ServiceCalls()


async def run_call(request: Request, call: Callable[[], _Result]) -> _Result:
    """``call`` as the app's :class:`ServiceCalls` runs it (in a thread if it has none)."""
    calls: ServiceCalls = getattr(request.app.state, "service_calls", _IN_THREADS)
    return await calls.run(call)
