"""The platform as many processes on one PostgreSQL (issue 17): `mynahil serve --workers 2`, and
two `mynahil serve` instances on different ports. Everything they share is in the database, so
the races, the password lock and a SIGKILL come out as they do in one process: one winner,
the cap held, five guesses checked, nothing acknowledged lost and nothing granted twice.

Each variant starts its servers once (module scope) and every test drives them over HTTP
from threads that send alternate requests to the instances (the workers listen on one port,
each on its own socket, and the kernel spreads connections over them).
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PIN
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.gateways import LocalAccountCheck
from mynahil.reference_impl.operator import OperatorClient
from mynahil.reference_impl.platform import build_platform, serve_process, wait_healthy
from mynahil.reference_impl.points import (
    Decision,
    Report,
    TransactionKind,
)
from mynahil.reference_impl.points.signing import Signer
from mynahil.reference_impl.store import SqlStore
from tests.conftest import postgres_schema
from tests.reliability.test_crash_consistency import (
    AS_OF,
    CHARGES_FROM,
    Acknowledged,
    _until_acknowledged,
    prepare_books,
)
from tests.support import MYNAHIL, free_port

OPERATOR, SERVICE = "many-op", "many-pay"
PEOPLE, CARDS, GUESSERS, RACERS = 12, 12, 50, 8
KEEP_ALIVE_CONNECTIONS = 16
PIN, PASSWORD = DEFAULT_PIN, "secret123"  # PASSWORD: the MyKey page password
T = TypeVar("T")


@dataclass
class Cluster:
    """The servers of one variant: their URLs, how to start each, and what they serve."""

    db_url: str
    folder: Path
    key: Ed25519PrivateKey
    accounts: list[str]
    cards: list[CardState]
    argvs: list[list[str]]
    urls: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    next_card: int = 0

    def start(self, index: int) -> None:
        process = subprocess.Popen(
            self.argvs[index], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if index < len(self.processes):
            self.processes[index] = process
        else:
            self.processes.append(process)
        wait_healthy(self.urls[index], process, timeout=90)

    def url(self, n: int) -> str:
        """The n-th instance, round robin; a killed one's requests go to the next."""
        for step in range(len(self.urls)):
            index = (n + step) % len(self.urls)
            if index >= len(self.processes) or self.processes[index].poll() is None:
                return self.urls[index]
        raise RuntimeError("no instance is running")

    def card(self) -> CardState:
        """A card no other test used."""
        self.next_card += 1
        return self.cards[self.next_card - 1]


@pytest.fixture(scope="module", params=["two-workers", "two-instances"])
def cluster(
    request: pytest.FixtureRequest,
    postgres_admin_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("many") / "jlis"
    with postgres_schema(postgres_admin_url) as db_url:
        key = Ed25519PrivateKey.generate()
        accounts, cards = prepare_books(
            db_url, folder, key, tag="many", people=PEOPLE, cards=CARDS, seed=17
        )
        instances = 1 if request.param == "two-workers" else 2
        ports = [free_port() for _ in range(instances)]
        argvs = [
            [*MYNAHIL, "serve", "--db", db_url, "--ca", str(folder), "--port", str(port),
             "--as-of", AS_OF.date().isoformat(), "--log-level", "warning",
             *(["--workers", "2"] if request.param == "two-workers" else [])]
            for port in ports
        ]  # fmt: skip
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        running = Cluster(db_url, folder, key, accounts, cards, argvs, urls)
        try:
            for index in range(instances):
                running.start(index)
            yield running
        finally:
            for process in running.processes:
                process.terminate()
            for process in running.processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def race(work: list[Callable[[], T]]) -> list[T | Exception]:
    """Every callable at once, each in its own thread; its value or what it raised."""
    start = threading.Barrier(len(work))
    results: list[T | Exception] = [RuntimeError("did not finish")] * len(work)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work[index]()
        except Exception as exc:  # returned to the test, which checks it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def card_login(url: str, state: CardState) -> str:
    return PlatformClient.connect(url).login(emulated_reader(state), PIN)


def reserve(url: str, state: CardState) -> str:
    return PlatformClient.connect(url).reserve(emulated_reader(state), PIN)


# --- races ----------------------------------------------------------------------------------


def test_the_business_clock_is_one_for_every_process(cluster: Cluster) -> None:
    """Started at different moments, every process reads the database's --as-of clock."""
    before = time.time()
    moments: list[datetime] = []
    for n in range(8):
        with PlatformClient.connect(cluster.url(n), timeout=10) as platform:
            moments.append(platform.business_time())
    elapsed = time.time() - before
    moments.sort()
    # Each process started its clock on its own: they would differ by their start-up times.
    assert (moments[-1] - moments[0]).total_seconds() <= elapsed + 0.05


def test_one_card_reserved_at_once_everywhere_gets_one_id(cluster: Cluster) -> None:
    state = cluster.card()
    results = race([partial(reserve, cluster.url(n), state) for n in range(RACERS)])
    ids = {r for r in results if isinstance(r, str)}
    assert len(ids) == 1, results
    assert reserve(cluster.url(1), state) in ids


def test_racing_id_changes_have_one_winner(cluster: Cluster) -> None:
    state = cluster.card()
    reserve(cluster.url(0), state)
    tokens = [card_login(cluster.url(n), state) for n in range(RACERS)]

    def change(n: int) -> int:
        answer = httpx.post(
            f"{cluster.url(n)}/v1/mykey/me/id", json={},
            headers={"Authorization": f"Bearer {tokens[n]}"}, timeout=30,
        )  # fmt: skip
        return answer.status_code

    results = race([partial(change, n) for n in range(RACERS)])
    assert sorted(r if isinstance(r, int) else 0 for r in results) == [200] + [401] * (
        RACERS - 1
    ), results


def test_reports_racing_for_one_person_stop_at_the_cap(cluster: Cluster) -> None:
    account = cluster.accounts[0]

    def report(n: int) -> int:
        client = OperatorClient.connect(cluster.url(n), Signer(OPERATOR, cluster.key), timeout=30)
        batch = [
            Report(f"cap-{n}-{i}", f"cap-{n}-{i}", SERVICE, account, TransactionKind.CHARGE,
                   4000, CHARGES_FROM + timedelta(seconds=n * 10 + i))
            for i in range(3)
        ]  # fmt: skip
        return sum(d.points for d in client.report(batch))

    results = race([partial(report, n) for n in range(RACERS)])
    assert all(isinstance(r, int) for r in results), results
    assert sum(r for r in results if isinstance(r, int)) == 5000  # 24,000 asked for


def test_fifty_parallel_password_guesses_check_five(cluster: Cluster) -> None:
    state = cluster.card()
    mykey_id = reserve(cluster.url(0), state)
    token = card_login(cluster.url(1), state)
    httpx.put(
        f"{cluster.url(0)}/v1/mykey/me/password", json={"password": PASSWORD},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    ).raise_for_status()  # fmt: skip

    def guess(n: int, password: str = "wrong-guess1") -> int:
        answer = httpx.post(
            f"{cluster.url(n)}/v1/mykey/sessions/password",
            json={"mykey_id": mykey_id, "password": password}, timeout=60,
        )  # fmt: skip
        return answer.status_code

    assert race([partial(guess, n) for n in range(GUESSERS)]) == [401] * GUESSERS
    assert guess(0, PASSWORD) == guess(1, PASSWORD) == 401  # paused, wherever it is asked
    with SqlStore.open(cluster.db_url, migrate=False) as store, store.transaction() as uow:
        record = uow.record_by_mykey_id(mykey_id)
    assert record is not None
    assert record.password_failures == 5  # no process read a stale count
    assert record.locked_until is not None


# --- connections ----------------------------------------------------------------------------


# Two workers only: between two instances the clients, not the kernel, choose where they go,
# and a killed instance is its operator's to restart.
WORKERS_ONLY = pytest.mark.parametrize("cluster", ["two-workers"], indirect=True)


@WORKERS_ONLY
def test_keep_alive_connections_opened_together_are_spread_over_the_workers(
    cluster: Cluster,
) -> None:
    """A load generator opens its pool of keep-alive connections at once; both workers must
    serve some of them, or the second worker sits idle however busy the first is. Each
    connection's worker is read from the workers' sockets (psutil): the one holding the
    connection's server end. With the kernel hashing each connection to one of two workers,
    all 16 landing on one happens once in 2^15."""
    port = urlsplit(cluster.urls[0]).port
    assert port is not None
    _both_listening(cluster, port)
    connections = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(KEEP_ALIVE_CONNECTIONS)
    ]
    try:
        for connection in connections:
            connection.connect()
        for connection in connections:  # each answered: accepted by some worker
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        worker_of_client_port = {
            held.raddr.port: worker.pid
            for worker in psutil.Process(cluster.processes[0].pid).children()
            for held in worker.net_connections(kind="tcp")
            if held.status == psutil.CONN_ESTABLISHED and held.laddr.port == port
        }
        client_ports = [connection.sock.getsockname()[1] for connection in connections]
        serving = [worker_of_client_port.get(client_port) for client_port in client_ports]
        assert None not in serving, worker_of_client_port
        assert len(set(serving)) == 2, f"one worker holds all {len(serving)} connections"
    finally:
        for connection in connections:
            connection.close()


def test_a_worker_logs_each_request_once(postgres_url: str, tmp_path: Path) -> None:
    """One access record a request, the platform's: uvicorn's own line doubled it in workers."""
    log = tmp_path / "serve.log"
    with serve_process(postgres_url, tmp_path / "jlis", workers=2, log=log) as (url, _process):
        answer = httpx.get(f"{url}/v1/health", headers={"X-Request-ID": "once-17"}, timeout=10)
        assert answer.status_code == 200
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    loggers = [r.get("logger") for r in records if r.get("request_id") == "once-17"]
    assert loggers == ["mynahil.access"]


# --- a crash --------------------------------------------------------------------------------


def _report(cluster: Cluster, n: int, batch: list[Report]) -> list[Decision]:
    """One batch to the n-th live instance (the same keys again after a lost answer)."""
    client = OperatorClient.connect(cluster.url(n), Signer(OPERATOR, cluster.key), timeout=10)
    return client.report(batch)


def _report_until(n: int, cluster: Cluster, prefix: str, acks: Acknowledged,
                  stop: threading.Event, wind_down: threading.Event) -> None:  # fmt: skip
    rng = random.Random(prefix)
    b = 0
    while not wind_down.is_set():
        b += 1
        batch = [
            Report(f"{prefix}{b}-{i}", f"{prefix}{b}-{i}", SERVICE,
                   rng.choice(cluster.accounts[1:]), TransactionKind.CHARGE, rng.randint(10, 300),
                   CHARGES_FROM + timedelta(seconds=b * 20 + i))
            for i in range(20)
        ]  # fmt: skip
        decisions = _until_acknowledged(partial(_report, cluster, n, batch), stop, acks)
        with acks.lock:
            for d in decisions:
                acks.points.setdefault(d.idempotency_key, d.points)


def _reserve_live(cluster: Cluster, n: int, state: CardState) -> str:
    return reserve(cluster.url(n), state)


def _reserve_until(n: int, cluster: Cluster, cards: list[CardState], acks: Acknowledged,
                   stop: threading.Event, wind_down: threading.Event) -> None:  # fmt: skip
    while not wind_down.is_set():
        for state in cards:
            assert state.auth is not None
            serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number
            mykey_id = _until_acknowledged(partial(_reserve_live, cluster, n, state), stop, acks)
            with acks.lock:
                assert acks.ids.setdefault(serial, mykey_id) == mykey_id, "a card changed its ID"


def _kill_one(cluster: Cluster) -> None:
    """SIGKILL one serving process while the other serves on: a worker (its parent starts
    another), or the first instance (its clients turn to the second)."""
    if len(cluster.urls) == 1:
        workers = [
            child
            for child in psutil.Process(cluster.processes[0].pid).children()
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        workers[0].send_signal(signal.SIGKILL)
        return
    cluster.processes[0].send_signal(signal.SIGKILL)
    cluster.processes[0].wait()


def test_sigkill_one_process_while_the_other_serves(cluster: Cluster) -> None:
    """Issuances and reports go to both processes; one is killed (a worker twice); every
    acknowledged answer is in the database, nothing was granted twice, the audit chain holds."""
    acks, stop, wind_down = Acknowledged(), threading.Event(), threading.Event()
    cards = [cluster.card() for _ in range(4)]
    clients = [
        threading.Thread(target=_report_until,
                         args=(n, cluster, f"crash{n}-", acks, stop, wind_down))
        for n in range(2)
    ] + [
        threading.Thread(target=_reserve_until,
                         args=(n, cluster, cards[n::2], acks, stop, wind_down))
        for n in range(2)
    ]  # fmt: skip
    for client in clients:
        client.start()
    try:
        for _ in range(2 if len(cluster.urls) == 1 else 1):
            time.sleep(random.uniform(0.3, 0.8))
            _kill_one(cluster)
        time.sleep(0.5)
        wind_down.set()
        for client in clients:
            client.join(timeout=120)
    finally:
        stop.set()
    assert all(not c.is_alive() for c in clients), "a client thread hung"
    assert acks.points
    assert acks.ids
    with SqlStore.open(cluster.db_url, migrate=False) as store:
        with store.transaction() as uow:
            stored = uow.transactions_by_key(OPERATOR, set(acks.points))
            for serial, mykey_id in acks.ids.items():
                record = uow.record_by_serial(serial)
                assert record is not None, f"acknowledged issuance of {serial} lost"
                assert record.mykey_id == mykey_id
            ledger_total = sum(
                e.points for e in uow.ledger_entries() if e.account_id != cluster.accounts[0]
            )  # the cap test's person is not in this load
        assert {k: t.points for k, t in stored.items()} == acks.points
        assert ledger_total == sum(acks.points.values())  # nothing granted twice
        assert store.verify_audit()[1] is None
    platform = build_platform(
        cluster.db_url, cluster.folder, accounts=LocalAccountCheck({}), as_of=AS_OF
    )
    try:
        assert platform.points.violations() == []
    finally:
        platform.close()


def _listening_workers(cluster: Cluster, port: int) -> set[int]:
    """The server's processes listening on ``port``."""
    found = set()
    for child in psutil.Process(cluster.processes[0].pid).children():
        try:
            held = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in held):
            found.add(child.pid)
    return found


def _both_listening(cluster: Cluster, port: int) -> set[int]:
    """The two workers, once both listen: healthy means one worker answered, and the other
    may still be opening its socket (connections made before then all go to the first)."""
    deadline = time.monotonic() + 60
    while len(listening := _listening_workers(cluster, port)) < 2:
        assert time.monotonic() < deadline, f"workers listening: {listening}"
        time.sleep(0.2)
    assert len(listening) == 2, listening
    return listening


@WORKERS_ONLY
def test_a_killed_worker_is_replaced_and_listens_again(cluster: Cluster) -> None:
    """Each worker listens on its own socket: the one started in place of a killed worker
    must open its own again, or the port is served by one worker from then on."""
    port = urlsplit(cluster.urls[0]).port
    assert port is not None
    before = _both_listening(cluster, port)
    killed = min(before)
    psutil.Process(killed).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 120
    while (now := _listening_workers(cluster, port)) == before or len(now) < 2:
        assert time.monotonic() < deadline, f"listening after the kill: {now}"
        time.sleep(0.2)
    assert killed not in now
    assert len(now) == 2
    wait_healthy(cluster.urls[0], cluster.processes[0], timeout=30)
