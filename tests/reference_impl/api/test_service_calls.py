"""Where the holders' hot calls run (reference_impl/api/calls.py): on SQLite, one writer at a
time, on the event loop while the writer is free, and in a worker thread while another thread
or process writes, so the loop keeps answering; on PostgreSQL always in worker threads (their
round trips overlap). A real server on loopback."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mynahil.reference_impl.api import logs
from mynahil.reference_impl.api.app import THREADS
from mynahil.reference_impl.mykey import Challenge, MyKeyService, Purpose
from mynahil.reference_impl.platform import (
    ReferencePlatform,
    app_from_environment,
    build_platform,
    serving,
)

CHALLENGE = {"purpose": "issue"}


@pytest.fixture
def platform(store_url: str, tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(store_url, tmp_path / "jlis")
    yield built
    built.close()


def threads_of_new_challenges(
    platform: ReferencePlatform, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The names of the threads that run the service's new_challenge, in order."""
    seen: list[str] = []
    original: Callable[[Purpose], Challenge] = platform.mykey.new_challenge

    def spy(purpose: Purpose) -> Challenge:
        seen.append(threading.current_thread().name)
        return original(purpose)

    monkeypatch.setattr(platform.mykey, "new_challenge", spy)
    return seen


def answered_while_waiting(url: str, pending: Future[httpx.Response]) -> None:
    """The server answers another request while ``pending`` waits for the writer."""
    with httpx.Client(base_url=url, timeout=5) as other:
        assert other.get("/v1/health").status_code == 200
    assert not pending.done()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_on_sqlite_a_call_runs_on_the_loop_and_goes_to_a_thread_behind_another_writer(
    platform: ReferencePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = threads_of_new_challenges(platform, monkeypatch)
    writing, done = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with platform.store.transaction():
            writing.set()
            done.wait(10)

    with serving(platform.app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/v1/mykey/challenges", json=CHALLENGE).status_code == 201
        loop_thread = seen[-1]
        assert loop_thread.startswith("platform-")  # serving()'s thread runs the event loop
        with ThreadPoolExecutor(2) as pool:
            holder = pool.submit(hold_the_writer)
            assert writing.wait(10)
            pending = pool.submit(http.post, "/v1/mykey/challenges", json=CHALLENGE)
            answered_while_waiting(url, pending)
            done.set()
            holder.result()
            assert pending.result().status_code == 201
        assert seen[-1] != loop_thread  # it waited for the writer in a worker thread
        assert http.post("/v1/mykey/challenges", json=CHALLENGE).status_code == 201
        assert seen[-1] == loop_thread


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_loop_does_not_wait_for_another_processs_write_lock(
    platform: ReferencePlatform, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = threads_of_new_challenges(platform, monkeypatch)
    other = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        with serving(platform.app) as url, httpx.Client(base_url=url, timeout=30) as http:
            other.execute("BEGIN IMMEDIATE")
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(http.post, "/v1/mykey/challenges", json=CHALLENGE)
                answered_while_waiting(url, pending)
                other.execute("ROLLBACK")
                assert pending.result().status_code == 201
            assert not seen[-1].startswith("platform-")
    finally:
        other.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_on_postgresql_calls_run_in_worker_threads(
    platform: ReferencePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = threads_of_new_challenges(platform, monkeypatch)
    with serving(platform.app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(3):
            assert http.post("/v1/mykey/challenges", json=CHALLENGE).status_code == 201
    assert seen
    assert not any(name.startswith("platform-") for name in seen)
    with pytest.raises(TypeError), platform.store.not_waiting():
        pass


def blocking_calls_at_once(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> int:
    """Twelve requests at once whose call blocks 0.3 s in a thread (``/v1/health`` asks the
    service's clock): how many ran together at most. Every one must be answered."""
    running, peak, lock = 0, 0, threading.Lock()
    service: MyKeyService = app.state.mykey
    original = service.clock

    def slow_clock() -> datetime:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        return original()

    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        monkeypatch.setattr(service, "clock", slow_clock)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: http.get("/v1/health"), range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    return peak


@pytest.mark.parametrize("store_url", ["postgresql", "sqlite"], indirect=True)
def test_a_worker_runs_at_most_threads_blocking_calls_at_once_on_postgresql(
    platform: ReferencePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a worker's blocking calls take at most THREADS threads at once (the rest
    wait on the event loop); on SQLite FastAPI's 40 stay, so more run together."""
    peak = blocking_calls_at_once(platform.app, monkeypatch)
    if platform.store.one_writer:
        assert peak > THREADS
    else:
        assert peak == THREADS


@pytest.mark.parametrize("store_url", ["postgresql", "sqlite"], indirect=True)
def test_threads_given_cap_the_blocking_calls_on_either_store(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --threads N`` (``build_platform(threads=N)``) on either store."""
    platform = build_platform(store_url, tmp_path / "jlis", threads=2)
    try:
        assert blocking_calls_at_once(platform.app, monkeypatch) == 2
    finally:
        platform.close()


def test_each_worker_of_serve_takes_threads_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --workers N --threads M``: each worker builds its app from ``MYNAHIL_*``."""
    monkeypatch.setenv("MYNAHIL_DB", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("MYNAHIL_JLIS", str(tmp_path / "jlis"))
    monkeypatch.setenv("MYNAHIL_THREADS", "3")
    # The worker's logging set-up is process-wide: kept from this test process's.
    monkeypatch.setattr(logs, "configure_logging", lambda *_: None)
    access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access, "propagate", access.propagate)
    app = app_from_environment()  # its shutdown, at serving()'s end, closes the platform
    assert blocking_calls_at_once(app, monkeypatch) == 3
