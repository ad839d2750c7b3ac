"""Helpers for tests: building cards quickly, and the PC/SC stack when the machine has it."""

from __future__ import annotations

import importlib
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Protocol

import httpx
import pytest

from mynahil.card_emulator import CardState
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import JlisCA, KeyPool, issue_card, random_holder

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# `HYPOTHESIS_PROFILE=deep` (tests/conftest.py registers it) is the exhaustive run, by hand or
# nightly: every property test draws DEEP_FACTOR times as many examples as in the test run.
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
DEEP_FACTOR = 20


def examples(bounded: int) -> int:
    """A property test's example count: ``bounded`` in the test run, ``DEEP_FACTOR`` times
    as many under ``HYPOTHESIS_PROFILE=deep``."""
    return bounded * DEEP_FACTOR if DEEP else bounded


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextmanager
def benchmark_script(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` imported as a module, with its folder on ``sys.path`` while
    it is used (the scripts import each other, as run from there)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


# Tests whose assertions hold a wall-clock bound (answer deadlines, slowloris timeouts, a flood
# of guesses, a soak's throughput). Under pytest-xdist (`--dist loadgroup`) they all run on one
# worker, one after another, so two of them never compete with each other for the cores.
TIMING_SENSITIVE = pytest.mark.xdist_group("timing")
PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


class CardFactory(Protocol):
    ca: JlisCA  # the J-LIS CA that issues the cards (its auth root verifies their card data)

    def __call__(
        self,
        *,
        issued_on: date | None = None,
        birth_date: date | None = None,
        with_certificates: bool = True,
        atr_profile: str = "contact",
    ) -> CardState: ...


class _Factory:
    def __init__(self, folder: Path, pool_size: int) -> None:
        self.ca = JlisCA.create(folder / "ca")
        self._pool = KeyPool.generate(pool_size, seed=7, cache_dir=folder / "keys")
        self._rng = random.Random(7)

    def __call__(
        self,
        *,
        issued_on: date | None = None,
        birth_date: date | None = None,
        with_certificates: bool = True,
        atr_profile: str = "contact",
    ) -> CardState:
        holder = random_holder(self._rng, birth_date=birth_date or date(1985, 6, 15))
        return issue_card(
            self.ca,
            holder,
            pin=PIN,
            password=PASSWORD,
            issued_on=issued_on or date.today(),
            with_certificates=with_certificates,
            keys=self._pool,
            atr_profile=atr_profile,
        )


def make_card_factory(folder: Path, pool_size: int = 4) -> CardFactory:
    return _Factory(folder, pool_size)


MYNAHIL = [sys.executable, "-m", "mynahil"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    argv: list[str],
    health_url: str,
    timeout: float = 30,
    *,
    verify: ssl.SSLContext | bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[None]:
    """A server process, once ``health_url`` answers 200 (an https one checked with
    ``verify``); terminated afterwards."""
    # Its log goes to a file, never a pipe nobody reads: a server that logs every request
    # (mynahil serve does) would fill a pipe's buffer and stop, blocked on writing its log.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if httpx.get(health_url, timeout=1, verify=verify).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"{argv[3:5]} did not start: {output}")
                time.sleep(0.1)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


def modules_loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``: what a start-up imports."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return set(json.loads(completed.stderr.splitlines()[-1]))


def mynahil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MYNAHIL, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )
