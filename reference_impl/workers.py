"""``mynahil serve --workers N``: N uvicorn worker processes, each accepting on its own socket.

uvicorn's own ``workers=N`` binds one listening socket and hands it to every worker. The
kernel then wakes whichever worker waits in accept(), and that worker takes every connection
queued at that moment: a client pool that opens its keep-alive connections together lands on
one worker while the others sit idle (``bench_mykey.py``: all four connections on one of two
workers). Here each worker binds its own socket to the same address with ``SO_REUSEPORT``
(as nginx's ``listen … reuseport`` and gunicorn's ``--reuse-port`` do): the kernel hashes each
new connection's addresses and ports to one of the listening sockets, so connections spread
over the workers whatever their timing.

A worker listens only once its app is built, so no connection waits on a worker still
starting. A worker that dies takes its socket and the connections queued on it (not yet
accepted) with it; new connections go to the others until its replacement listens.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

__all__ = ["LISTENING", "STARTUP_FAILURE", "port_problem", "run_workers"]

STARTUP_FAILURE = 3
"""The exit status of a worker that could not start (uvicorn's, for a broken app or bind):
starting it again would fail the same way, so every worker stops."""

_log = logging.getLogger("mynahil.workers")
_spawn = multiprocessing.get_context("spawn")  # no copy of the parent's database connections


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (another server listens there), or None.

    Asked once before the workers start: with ``SO_REUSEPORT`` their sockets would otherwise
    silently share the port with any other server of the same user listening on it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # old connections are no bar
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` beside the other workers' (not yet listening:
    asyncio listens when the server starts, after the app is built)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


LISTENING = "accepting connections on"
"""What each worker logs once it listens (after its app started): the sign that it serves."""


class _Worker(uvicorn.Server):
    """uvicorn's server, saying when it listens (uvicorn says nothing then for a socket it
    is handed: its own parent process would have said it)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            _log.info("worker %s %s %s:%s", os.getpid(), LISTENING, self.config.host,
                      self.config.port)  # fmt: skip


def _serve_one(options: dict[str, Any]) -> None:
    """One worker: its own socket, then uvicorn's server on it (run in the spawned process)."""
    config = uvicorn.Config(**options)
    try:
        sock = reuse_port_socket(config.host, config.port)
    except OSError as exc:
        _log.error("worker cannot bind %s:%s: %s", config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    _Worker(config).run(sockets=[sock])


def run_workers(count: int, options: dict[str, Any]) -> int:
    """Serve with ``count`` worker processes, each running ``uvicorn.Config(**options)`` (an
    app given by import string) on its own ``SO_REUSEPORT`` socket, until SIGINT or SIGTERM;
    a worker that dies is replaced. The exit status: 0, or :data:`STARTUP_FAILURE` when a
    worker could not start. A second signal while the workers shut down kills them."""
    signals: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        process = _spawn.Process(target=_serve_one, args=(options,), name="mynahil-worker")
        process.start()
        return process

    status = 0
    workers = [start() for _ in range(count)]
    try:
        while not signals and status == 0:
            wait([w.sentinel for w in workers], timeout=0.5)  # a death or half a second
            for index, worker in enumerate(workers):
                if worker.is_alive() or signals:
                    continue
                worker.join()
                if worker.exitcode == STARTUP_FAILURE:
                    _log.error("worker %s could not start: stopping every worker", worker.pid)
                    status = STARTUP_FAILURE
                    break
                _log.warning("worker %s ended (exit %s): starting another", worker.pid,
                             worker.exitcode)  # fmt: skip
                workers[index] = start()
    finally:
        handled = len(signals)
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        while any(worker.is_alive() for worker in workers):
            wait([w.sentinel for w in workers if w.is_alive()], timeout=0.5)
            if len(signals) > handled:  # asked again: stop waiting for them
                for worker in workers:
                    worker.kill()
        for worker in workers:
            worker.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
