"""The supervisor of ``mynahil serve --workers N`` (its serving is tested on PostgreSQL in
``tests/reliability/test_many_workers.py``): what it does when workers cannot start."""

from __future__ import annotations

import socket
import time

from mynahil.reference_impl.workers import STARTUP_FAILURE, port_problem, run_workers
from tests.support import free_port


def test_a_worker_that_cannot_start_stops_them_all() -> None:
    """Starting it again would fail the same way: no endless restarts, a failing status."""
    began = time.monotonic()
    status = run_workers(
        2, {"app": "tests.no_such_module:app", "factory": True, "host": "127.0.0.1",
            "port": free_port(), "log_config": None},
    )  # fmt: skip
    assert status == STARTUP_FAILURE
    assert time.monotonic() - began < 60


def test_a_free_port_has_no_problem_and_a_listened_one_has() -> None:
    port = free_port()
    assert port_problem("127.0.0.1", port) is None
    with socket.create_server(("127.0.0.1", port)):
        problem = port_problem("127.0.0.1", port)
    assert problem is not None
    assert f"127.0.0.1:{port}" in problem
