"""MyKey ID issuances per second: in-process and over HTTP, on SQLite and PostgreSQL.

Each issuance is what the platform does with a card's answer: consume the challenge, check
the certificate's chain, dates, J-LIS status and the signature over the nonce, bind a new
MyKey ID, and append the audit record, committed before the answer. The cards' signatures
are made beforehand (that work is the card's, not the platform's); the raw RSA-2048 verify
rate is measured in the same run for scale, since every issuance verifies two signatures.

On PostgreSQL the server is also measured with two workers (``serve --workers 2``) right
after one, with the same client connections, and their ratio is printed
(``postgres_http_2workers_per_1worker``). For each HTTP run the line printed says how many
client connections there were, how many of them each server process held, and where the CPU
went per issuance: the server's processes, the PostgreSQL backends serving them, this client
process, and anything else the machine ran meanwhile (on a machine of 2 cores the clients and
PostgreSQL share them with the workers, and other processes may too). From the two-worker
run's CPU per issuance it also prints the most the machine's cores could do if they ran only
this (``postgres_http_2workers_cpu_ceiling_per_s`` and its ratio to one worker). With two
workers the client connections are spread evenly over them before the run, as a load balancer
would (the kernel alone often gives one worker three of four); the line says how many were
re-dialled for it. Since whole runs minutes apart follow the machine's drift more than the
code, two workers per one is also measured in alternating chunks: a one-worker and a two-worker
server on the same database at once, chunks of ``--cards``/10 issuances sent to one and then
the other, the order swapped every pair; the median of the pairs' ratios and its quartiles
(``postgres_http_2workers_per_1worker_alternating_median``, ``…_quartiles``). In every
alternation each timed chunk follows an untimed one to the same side
(``alternating_warm_up_chunks``): a side starts its turn from idle, and on PostgreSQL the
first few hundred issuances after idle run well below the steady rate a loaded platform keeps
(``bench_warm_chunks.py``). Every whole run, in process and over HTTP, likewise follows
``--cards``/5 untimed issuances on the same path with the same clients (since the fifteenth
session), so that neither a worker's first requests nor PostgreSQL's climb from idle is in
its figures.

SQLite's figures are with its default ``synchronous=NORMAL`` (a commit survives a crash of
the process, not a power cut); one more in-process run with ``?synchronous=full`` (every
commit synced) prints ``sqlite_full_sync_inproc_issuances_per_s`` (one client) and
``sqlite_full_sync_inproc_clients_issuances_per_s`` (``--clients`` threads, whose issuances
queued for SQLite's one writer share a commit and its sync). PostgreSQL syncs every commit
(``synchronous_commit=on``).

In process, each store is measured with one client and with ``--clients`` threads (4 by
default) issuing at once; ``postgres_per_sqlite_inproc`` compares each store's better figure.
The ratios issue 17 sets targets for are printed as such: ``sqlite_inproc_per_rsa_verify``,
``sqlite_http_per_inproc``, ``postgres_per_sqlite_inproc``, ``postgres_http_2workers_per_1worker``.
The two that compare runs minutes apart are also measured in alternating chunks, as two
workers per one is: one HTTP worker per the platform called in process, the server and the
platform on the same SQLite file (``sqlite_http_per_inproc_alternating_median``,
``…_quartiles``); and PostgreSQL per SQLite in process, a platform on each, each store with
the number of client threads that gave its better whole-run figure
(``postgres_per_sqlite_inproc_alternating_median``, ``…_quartiles``, ``…_clients``).

Whether the machine was idle is printed too: other processes' CPU per issuance in each HTTP
run (``sqlite_http_other_cpu_ms``, ``postgres_http_1worker_other_cpu_ms``,
``postgres_http_2workers_other_cpu_ms``), a warning for a run where it exceeded a tenth of the
run's own, and ``machine_busy_elsewhere`` if any did: such a run's figures are not an idle
machine's, and the README quotes none as one.

Run: ``python benchmarks/bench_mykey.py [--cards N] [--postgres URL] [--clients N]``. The last
line is JSON.
"""

from __future__ import annotations

import argparse
import base64
import gc
import http.client
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psutil
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rich.progress import track
from scratch_postgres import POSTGRES, scratch_schema
from sqlalchemy import create_engine, make_url, text

from mynahil.card_emulator import CardState
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.mykey import Purpose
from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serve_process

Proof = tuple[str, bytes, bytes]
_Item = TypeVar("_Item")
WARM_UP = 5
"""Issuances each HTTP client connection sends before the clock starts."""
WARM_CHUNKS = 1
"""In every alternation, untimed chunks to a side right before each of its timed chunks."""
CLIENTS = 4


def rsa_verify_rate(seconds: float = 1.0) -> float:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"nonce" * 6
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        n += 200
    return n / (time.perf_counter() - start)


def make_cards(platform: ReferencePlatform, count: int, pool: KeyPool) -> list[CardState]:
    rng = random.Random(9)
    return [
        lifecycle.issue(
            platform.jlis.ca,
            platform.jlis.registry,
            random_holder(rng),
            pin=DEFAULT_PIN,
            password=DEFAULT_PASSWORD,
            issued_on=date.today(),
            keys=pool,
        )
        for _ in track(range(count), description="issuing cards", transient=True)
    ]


def card_proofs(platform: ReferencePlatform, cards: list[CardState]) -> list[Proof]:
    """Challenges from the platform, signed with each card's key (as the card would)."""
    proofs = []
    for card in cards:
        assert card.auth is not None
        challenge = platform.mykey.new_challenge(Purpose.ISSUE)
        signature = card.auth.private_key.sign(challenge.nonce, padding.PKCS1v15(), hashes.SHA256())
        proofs.append((challenge.challenge_id, card.auth.certificate, signature))
    return proofs


def in_process_rate(platform: ReferencePlatform, proofs: list[Proof], clients: int = 1) -> float:
    """Issuances per second with ``clients`` threads calling the platform at once (holders
    arrive concurrently; PostgreSQL overlaps their round trips, SQLite's writers queue)."""

    def issue(share: list[Proof]) -> None:
        for challenge_id, certificate, signature in share:
            platform.mykey.issue(challenge_id, certificate, signature)

    gc.collect()  # the harness's cards and proofs out of the cyclic collector's way, as
    gc.freeze()  # bench_points and bench_interleaved do: the platform is timed, not them
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as threads:
        list(threads.map(issue, [proofs[i::clients] for i in range(clients)]))
    return len(proofs) / (time.perf_counter() - start)


def whole_run_warm_up(count: int, clients: int) -> int:
    """Issuances sent untimed right before a whole run of ``count``, on the same path with the
    same ``clients`` (at least :data:`WARM_UP` each): PostgreSQL's clients and backends climb to
    their steady rate over the first few hundred issuances after idle
    (``bench_warm_chunks.py``), which a loaded platform does not pay."""
    return max(WARM_UP * clients, count // 5)


def warmed_in_process_rate(
    platform: ReferencePlatform, warm: list[CardState], timed: list[CardState], clients: int = 1
) -> float:
    """:func:`in_process_rate` over ``timed``'s cards right after ``warm``'s, untimed, with the
    same clients (each card's challenge asked for beforehand, so nothing comes between)."""
    warm_proofs, timed_proofs = card_proofs(platform, warm), card_proofs(platform, timed)
    in_process_rate(platform, warm_proofs, clients)
    return in_process_rate(platform, timed_proofs, clients)


def _tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of a process and of each of its children (a server's
    workers), by process ID."""
    root = psutil.Process(pid)
    spent = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        spent[process.pid] = times.user + times.system
    return spent


def _tcp_connections(server_pid: int) -> list[tuple[int, Any]]:
    """The TCP connections the server's processes hold: (process ID, connection)."""
    root = psutil.Process(server_pid)
    held = []
    for process in [root, *root.children(recursive=True)]:
        try:
            held += [(process.pid, c) for c in process.net_connections(kind="tcp") if c.raddr]
        except psutil.NoSuchProcess:
            continue
    return held


def _holders(
    connections: list[http.client.HTTPConnection], server_pid: int, listening_port: int
) -> list[int | None]:
    """For each client connection to the server's ``listening_port``: the server process
    holding it (None: not accepted yet, or not connected)."""
    held_by = {
        c.raddr.port: pid
        for pid, c in _tcp_connections(server_pid)
        if c.laddr.port == listening_port
    }
    return [held_by.get(c.sock.getsockname()[1]) if c.sock else None for c in connections]


def _spread_evenly(
    connections: list[http.client.HTTPConnection], server_pid: int, port: int, workers: int
) -> int:
    """Connect the client connections, re-dialling until the server's workers hold them evenly,
    as a load balancer in front of the workers would spread them (each worker listens on its
    own SO_REUSEPORT socket and the kernel hashes each connection to one: four connections
    land 3+1 more often than 2+2). How many connections were re-dialled."""
    for connection in connections:
        connection.connect()
    for redialled in range(50):
        deadline = time.monotonic() + 5
        while True:  # until the server has accepted every connection
            holders = _holders(connections, server_pid, port)
            if None not in holders or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        counts = Counter(holders)
        if len(counts) == workers and max(counts.values()) - min(counts.values()) <= 1:
            return redialled
        busiest = counts.most_common(1)[0][0]
        moved = connections[holders.index(busiest)]
        moved.close()
        moved.connect()
    raise SystemExit(f"the server's {workers} workers did not take the connections evenly")


def _backend_cpu(server_pid: int, db_url: str) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds, by PID, of each PostgreSQL backend serving the server's processes (their
    connections' client ports looked up in ``pg_stat_activity``) and of PostgreSQL's own
    processes (WAL writer, checkpointer, autovacuum, …: work the run's commits cause). Both
    empty on SQLite."""
    database = make_url(db_url)
    if not database.drivername.startswith("postgresql"):
        return {}, {}
    postgres_port = database.port or 5432
    ports = {c.laddr.port for _, c in _tcp_connections(server_pid) if c.raddr.port == postgres_port}
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            processes = connection.execute(
                text("SELECT pid, client_port, backend_type FROM pg_stat_activity")
            ).all()
    finally:
        engine.dispose()
    serving: dict[int, float] = {}
    own: dict[int, float] = {}
    for pid, client_port, backend_type in processes:
        if client_port in ports or backend_type != "client backend":
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            (serving if client_port in ports else own)[pid] = times.user + times.system
    return serving, own


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes in ``after`` used since ``before`` (a new one: all of it)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent busy so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def issuance_bodies(proofs: list[Proof]) -> list[bytes]:
    """Each proof as the issuance request's JSON body."""
    return [
        json.dumps(
            {
                "challenge_id": c,
                "certificate": base64.b64encode(cert).decode(),
                "signature": base64.b64encode(sig).decode(),
            }
        ).encode()
        for c, cert, sig in proofs
    ]


def _send(connection: http.client.HTTPConnection, share: list[bytes]) -> http.client.HTTPConnection:
    """Issue over one keep-alive connection, one request after another. http.client: a load
    generator light enough that the server, not the client, sets the pace (httpx cost ~1 ms
    of client CPU a request)."""
    for payload in share:
        connection.request("POST", "/v1/mykey/ids", payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 201:
            raise SystemExit(f"issuance failed: {answer!r}")
    return connection  # still open: the caller sees which worker holds it


def _send_all(
    pool: ThreadPoolExecutor, connections: list[http.client.HTTPConnection], bodies: list[bytes]
) -> float:
    """``bodies`` shared out over the connections, all sending at once: issuances per second."""
    shares = [bodies[i :: len(connections)] for i in range(len(connections))]
    start = time.perf_counter()
    list(pool.map(_send, connections, shares))
    return len(bodies) / (time.perf_counter() - start)


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _connected(
    url: str, process: subprocess.Popen[bytes], clients: int, workers: int
) -> tuple[list[http.client.HTTPConnection], int]:
    """``clients`` keep-alive connections to the server at ``url``, spread evenly over its
    workers; and how many were re-dialled for that."""
    port = _port(url)
    connections = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(clients)
    ]
    redialled = _spread_evenly(connections, process.pid, port, workers) if workers > 1 else 0
    return connections, redialled


def alternating(
    first: Callable[[list[_Item]], float],
    second: Callable[[list[_Item]], float],
    items: list[_Item],
    chunk: int,
    warm: int = 0,
) -> dict[str, Any]:
    """``second``'s rate per ``first``'s, in alternating chunks: ``chunk`` of ``items`` to one,
    the next ``chunk`` to the other, the order swapped every pair (the rest untimed, to
    ``first``). Each pair is measured within seconds, so the machine's drift (by a third within
    minutes here) mostly cancels in its ratio; the median of the pairs' ratios and its
    quartiles. With ``warm``, each timed chunk is preceded by ``warm`` more items to the same
    side, untimed: a side starts its turn from idle, and PostgreSQL's clients and backends
    take a few hundred issuances to reach their steady rate again, which a loaded platform
    never leaves (``bench_warm_chunks.py`` measures this)."""
    step = warm + chunk

    def timed(side: Callable[[list[_Item]], float], share: list[_Item]) -> float:
        if warm:
            side(share[:warm])
        return side(share[warm:])

    ratios = []
    for pair, start in enumerate(range(0, len(items) - 2 * step + 1, 2 * step)):
        one, other = items[start : start + step], items[start + step : start + 2 * step]
        if pair % 2 == 0:
            first_rate, second_rate = timed(first, one), timed(second, other)
        else:
            second_rate, first_rate = timed(second, one), timed(first, other)
        ratios.append(second_rate / first_rate)
    if len(ratios) < 2:
        raise SystemExit(
            f"{len(items)} items make fewer than two pairs of chunks of {chunk} (and {warm} "
            "untimed before each)"
        )
    if rest := items[len(ratios) * 2 * step :]:
        first(rest)
    quartiles = statistics.quantiles(ratios, n=4)
    return {
        "median": round(statistics.median(ratios), 3),
        "quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "pairs": len(ratios),
        "chunk": chunk,
        "warm_up": warm,
    }


def _said(what: str, alternation: dict[str, Any]) -> None:
    print(
        f"  {what} in {alternation['pairs']} alternating pairs of {alternation['chunk']} "
        f"issuances (each after {alternation['warm_up']} untimed to the same side): median "
        f"{alternation['median']}x (quartiles "
        f"{alternation['quartiles'][0]}-{alternation['quartiles'][1]})"
    )


def alternating_workers_ratio(
    db_url: str, folder: Path, proofs: list[Proof], clients: int, chunk: int
) -> dict[str, Any]:
    """Two workers per one, over HTTP, in alternating chunks (:func:`alternating`): a
    one-worker and a two-worker server run at once on the same database, each idle while the
    other is timed."""
    bodies = issuance_bodies(proofs)
    warm, timed = bodies[: 2 * clients * WARM_UP], bodies[2 * clients * WARM_UP :]
    with (
        serve_process(db_url, folder, workers=1) as (url_one, process_one),
        serve_process(db_url, folder, workers=2) as (url_two, process_two),
        ThreadPoolExecutor(clients) as pool,
    ):
        one = _connected(url_one, process_one, clients, 1)[0]
        two = _connected(url_two, process_two, clients, 2)[0]
        _send_all(pool, one, warm[: clients * WARM_UP])
        _send_all(pool, two, warm[clients * WARM_UP :])
        ratio = alternating(
            partial(_send_all, pool, one), partial(_send_all, pool, two), timed, chunk,
            warm=WARM_CHUNKS * chunk,
        )  # fmt: skip
        for connection in one + two:
            connection.close()
    return ratio


def alternating_http_ratio(
    platform: ReferencePlatform, db_url: str, folder: Path, proofs: list[Proof], clients: int,
    chunk: int,
) -> dict[str, Any]:  # fmt: skip
    """One HTTP worker (``clients`` connections) per the platform called in process (one
    client), in alternating chunks (:func:`alternating`): the server and ``platform`` on the
    same database, each idle while the other is timed."""
    with (
        serve_process(db_url, folder) as (url, process),
        ThreadPoolExecutor(clients) as pool,
    ):
        connections = _connected(url, process, clients, 1)[0]
        warm = clients * WARM_UP
        _send_all(pool, connections, issuance_bodies(proofs[:warm]))
        in_process_rate(platform, proofs[warm : 2 * warm])
        timed = proofs[2 * warm :]
        # Each item is a proof and its request body: a chunk goes one way or the other.
        ratio = alternating(
            lambda share: in_process_rate(platform, [proof for proof, _ in share]),
            lambda share: _send_all(pool, connections, [body for _, body in share]),
            list(zip(timed, issuance_bodies(timed), strict=True)),
            chunk,
            warm=WARM_CHUNKS * chunk,
        )
        for connection in connections:
            connection.close()
    return ratio


def http_rate(
    db_url: str,
    folder: Path,
    proofs: list[Proof],
    clients: int,
    workers: int = 1,
    *,
    warm: list[Proof],
) -> dict[str, Any]:
    """`mynahil serve` (``workers`` uvicorn workers) in its own process on loopback;
    ``clients`` keep-alive connections send requests back to back, one thread each (holders
    arrive concurrently; one client alone would measure its latency, not the server), ``warm``
    untimed and then ``proofs``. The rate; CPU milliseconds per issuance of the server's
    processes, of the PostgreSQL backends serving them, of this (client) process and of the
    whole machine (other processes too); and how many of the connections each worker held."""
    untimed, bodies = issuance_bodies(warm), issuance_bodies(proofs)
    with (
        serve_process(db_url, folder, workers=workers) as (url, process),
        ThreadPoolExecutor(clients) as pool,
    ):
        connections, redialled = _connected(url, process, clients, workers)
        # Untimed: a worker's first requests pay its own warm-up (imports and caches filled on
        # first use, its connections to the database opened), which two workers pay twice;
        # then PostgreSQL climbs to its steady rate (whole_run_warm_up).
        _send_all(pool, connections, untimed)
        # ~15 ms of readings between the warm-up and the clock (the backends' PIDs are looked up
        # in pg_stat_activity): far shorter than the idle the warm-up is for.
        server, client, machine = _tree_cpu(process.pid), time.process_time(), _machine_busy()
        backends, background = _backend_cpu(process.pid, db_url)
        start = time.perf_counter()
        _send_all(pool, connections, bodies)
        elapsed = time.perf_counter() - start
        timed = len(bodies)
        after, machine_after = _tree_cpu(process.pid), _machine_busy()
        client_after = time.process_time()
        backends_after, background_after = _backend_cpu(process.pid, db_url)
        holders = _holders(connections, process.pid, _port(url))
        for connection in connections:
            connection.close()
    spent = {pid: after[pid] - server.get(pid, 0.0) for pid in after}
    busiest = max(spent.values())  # with workers: how evenly connections were spread
    per = 1000 / timed  # seconds in total -> milliseconds per issuance
    return {
        "per_s": timed / elapsed,
        "clients": clients,
        "redialled": redialled,
        "connections_per_worker": sorted(
            (holders.count(pid) for pid in set(holders)), reverse=True
        ),
        "busiest_process_share": busiest / max(sum(spent.values()), 1e-9),
        "server_cpu_ms": sum(spent.values()) * per,
        "postgres_cpu_ms": _spent(backends, backends_after) * per,
        "postgres_background_cpu_ms": _spent(background, background_after) * per,
        "client_cpu_ms": (client_after - client) * per,
        "machine_cpu_ms": (machine_after - machine) * per,
        "wall_ms": elapsed * per,
    }


BUSY_ELSEWHERE = 0.1
"""Other processes' CPU during an HTTP run, as a share of the run's own (server, PostgreSQL
backends, clients), above which the machine was not idle and the run's figures are not an
idle machine's (on an idle one it is ~1%)."""


def _own_cpu_ms(run: dict[str, Any]) -> float:
    """The run's own CPU per issuance: server, PostgreSQL (backends and its own processes),
    clients."""
    postgres = run["postgres_cpu_ms"] + run["postgres_background_cpu_ms"]
    return float(run["server_cpu_ms"] + postgres + run["client_cpu_ms"])


def cpu_ceiling_per_s(run: dict[str, Any], cores: int) -> float:
    """The most this machine's ``cores`` could do at the run's CPU per issuance if they ran
    only the run's own processes: the server, PostgreSQL (backends and its own) and clients."""
    return 1000 * cores / _own_cpu_ms(run)


def other_cpu_ms(run: dict[str, Any]) -> float:
    """CPU milliseconds per issuance the machine spent on anything but the run's processes."""
    return float(run["machine_cpu_ms"]) - _own_cpu_ms(run)


def busy_elsewhere(run: dict[str, Any]) -> bool:
    """Whether other work took more than :data:`BUSY_ELSEWHERE` of the run's own CPU."""
    return other_cpu_ms(run) > BUSY_ELSEWHERE * _own_cpu_ms(run)


def _where_the_time_went(label: str, run: dict[str, Any]) -> None:
    """One line: the rate, then where the CPU went per issuance (on a machine of few cores,
    the clients and PostgreSQL share them with the server); a warning if the machine was
    busy with other work meanwhile."""
    others = other_cpu_ms(run)
    split = "+".join(str(n) for n in run["connections_per_worker"])
    if run["redialled"]:
        split += f" ({run['redialled']} re-dialled to spread them)"
    print(
        f"  {label}, {run['clients']} client connections: {run['per_s']:,.0f}/s; per issuance "
        f"{run['wall_ms']:.2f} ms wall, CPU {run['server_cpu_ms']:.2f} ms server, "
        f"{run['postgres_cpu_ms']:.2f} ms PostgreSQL backends (and "
        f"{run['postgres_background_cpu_ms']:.2f} ms its own processes), "
        f"{run['client_cpu_ms']:.2f} ms client, {others:.2f} ms anything else on the machine "
        f"({psutil.cpu_count()} cores, "
        f"load average {psutil.getloadavg()[0]:.1f}); connections per server process "
        f"{split}; the busiest server process did {run['busiest_process_share']:.0%} of the "
        "server's work"
    )
    if busy_elsewhere(run):
        print(
            f"  warning: the machine was busy with other work during {label} ({others:.2f} ms "
            f"of other CPU per issuance): its figures are not an idle machine's"
        )


def measure(
    db_url: str,
    folder: Path,
    pool: KeyPool,
    count: int,
    clients: int = CLIENTS,
    *,
    two_workers: bool = False,
) -> dict[str, Any]:
    """In-process, then over HTTP with one worker (and, with ``two_workers``, two)."""
    # Four runs' cards for an alternation (half of them its warm-ups): two workers per one
    # (PostgreSQL) or one HTTP worker per in process (SQLite, which serves with one worker).
    runs = 8 if two_workers else 7
    platform = build_platform(db_url, folder)
    try:
        # Each whole run's warm-up: in process with one client and with several, over HTTP with
        # one worker (and two).
        warm, whole_runs = whole_run_warm_up(count, clients), 4 if two_workers else 3
        cards = make_cards(platform, runs * count + whole_runs * warm, pool)
        first = runs * count
        warm_ups = [cards[first + i * warm : first + (i + 1) * warm] for i in range(whole_runs)]
        inproc = warmed_in_process_rate(platform, warm_ups[0], cards[:count])
        together = warmed_in_process_rate(platform, warm_ups[1], cards[count : 2 * count], clients)
        one = http_rate(
            db_url, folder, card_proofs(platform, cards[2 * count : 3 * count]), clients,
            warm=card_proofs(platform, warm_ups[2]),
        )  # fmt: skip
        _where_the_time_went("HTTP, 1 worker", one)
        figures: dict[str, Any] = {
            "inproc_per_s": round(inproc),
            "inproc_clients_per_s": round(together),
            "http_per_s": round(one["per_s"]),
            "http_clients": clients,
            "http_1worker_other_cpu_ms": round(other_cpu_ms(one), 2),
            "busy_elsewhere": busy_elsewhere(one),
        }
        if not two_workers:
            alternating_http = alternating_http_ratio(
                platform, db_url, folder, card_proofs(platform, cards[3 * count : runs * count]),
                clients,
                chunk=max(20, count // 10),
            )  # fmt: skip
            figures["http_per_inproc_alternating"] = alternating_http
            _said("one HTTP worker per in process", alternating_http)
        else:
            proofs = card_proofs(platform, cards[3 * count : 4 * count])
            two = http_rate(
                db_url, folder, proofs, clients, workers=2, warm=card_proofs(platform, warm_ups[3])
            )
            _where_the_time_went("HTTP, 2 workers", two)
            figures["http_2workers_per_s"] = round(two["per_s"])
            figures["http_2workers_ratio"] = round(two["per_s"] / one["per_s"], 2)
            figures["http_2workers_busiest_share"] = round(two["busiest_process_share"], 2)
            figures["http_2workers_connections_per_worker"] = two["connections_per_worker"]
            names = ("server_cpu_ms", "postgres_cpu_ms", "postgres_background_cpu_ms")
            for name in (*names, "client_cpu_ms", "machine_cpu_ms"):
                figures[f"http_1worker_{name}"] = round(one[name], 2)
                figures[f"http_2workers_{name}"] = round(two[name], 2)
            figures["http_2workers_other_cpu_ms"] = round(other_cpu_ms(two), 2)
            figures["busy_elsewhere"] = figures["busy_elsewhere"] or busy_elsewhere(two)
            needed = _own_cpu_ms(two)
            ceiling = cpu_ceiling_per_s(two, psutil.cpu_count() or 1)
            figures["http_2workers_cpu_ceiling_per_s"] = round(ceiling)
            figures["http_2workers_cpu_ceiling_ratio"] = round(ceiling / one["per_s"], 2)
            alternating = alternating_workers_ratio(
                db_url, folder, card_proofs(platform, cards[4 * count : runs * count]), clients,
                chunk=max(20, count // 10),
            )  # fmt: skip
            figures["http_2workers_ratio_alternating"] = alternating
            _said("two workers per one", alternating)
            print(
                f"  at {needed:.2f} ms of CPU per issuance (server, PostgreSQL, clients), "
                f"{psutil.cpu_count()} cores could do at most {ceiling:,.0f}/s: "
                f"{ceiling / one['per_s']:.2f}x the one-worker rate"
            )
        count_checked, problem = platform.store.verify_audit()
        if problem is not None or count_checked < runs * count:
            raise SystemExit(f"audit chain broken after the run: {problem}")
        return figures
    finally:
        platform.close()


def alternating_store_ratio(
    sqlite: tuple[str, Path, int], postgres: tuple[str, Path, int], pool: KeyPool, count: int
) -> dict[str, Any]:
    """PostgreSQL's in-process rate per SQLite's, in alternating chunks (:func:`alternating`)
    of ``count``/5 issuances, each after as many untimed to the same store, 3 ``count`` on
    each store in all: a platform on each, given as
    (database URL, J-LIS folder, client threads) with the number of client threads that gave
    its better whole-run figure. (Chunks of ``count``/10, as over HTTP, read PostgreSQL's
    client threads ~20% below their whole-run rate: too short for four threads.)"""
    (_, _, lite_clients), (_, _, pg_clients) = sqlite, postgres
    lite, pg = platforms = [build_platform(url, folder) for url, folder, _ in (sqlite, postgres)]
    try:
        warm = WARM_UP * 10
        chunk = max(20, count // 5)
        cards = [make_cards(p, warm + 3 * (1 + WARM_CHUNKS) * count, pool) for p in platforms]
        # The challenges last minutes: asked for once every card is made. A chunk's issuances
        # go to one store, so each item holds a proof for either store.
        lite_proofs, pg_proofs = (card_proofs(p, c) for p, c in zip(platforms, cards, strict=True))
        in_process_rate(lite, lite_proofs[:warm], lite_clients)
        in_process_rate(pg, pg_proofs[:warm], pg_clients)
        return alternating(
            lambda share: in_process_rate(lite, [proof for proof, _ in share], lite_clients),
            lambda share: in_process_rate(pg, [proof for _, proof in share], pg_clients),
            list(zip(lite_proofs[warm:], pg_proofs[warm:], strict=True)),
            chunk=chunk,
            warm=WARM_CHUNKS * chunk,
        )
    finally:
        for platform in platforms:
            platform.close()


def durable_sqlite_rates(
    folder: Path, pool: KeyPool, count: int, clients: int
) -> tuple[float, float]:
    """In process on SQLite with ``?synchronous=full``, with one client and with ``clients``
    threads: every commit syncs the WAL (the default, NORMAL, survives a crash of the process
    but not of the machine). Threads that queue for the writer share a commit, and its sync."""
    platform = build_platform(
        f"sqlite:///{folder / 'durable.db'}?synchronous=full", folder / "jlis-durable"
    )
    try:
        warm = whole_run_warm_up(count, clients)
        cards = make_cards(platform, 2 * count + 2 * warm, pool)
        warm_ups = cards[2 * count : 2 * count + warm], cards[2 * count + warm :]
        one = warmed_in_process_rate(platform, warm_ups[0], cards[:count])
        together = warmed_in_process_rate(platform, warm_ups[1], cards[count : 2 * count], clients)
        return one, together
    finally:
        platform.close()


def postgres_figures(
    url: str, tmp: Path, pool: KeyPool, args: argparse.Namespace, sqlite: tuple[str, float, int]
) -> dict[str, object]:
    """PostgreSQL's figures at ``url``, and its ratios to SQLite's (``sqlite``: its database
    URL, its better in-process rate and the client threads it took)."""
    sqlite_url, sqlite_best, sqlite_clients = sqlite
    figures: dict[str, object] = {}
    result = measure(url, tmp / "jlis-b", pool, args.cards, args.clients, two_workers=True)
    figures["postgres_inproc_issuances_per_s"] = result["inproc_per_s"]
    figures["postgres_inproc_clients_issuances_per_s"] = result["inproc_clients_per_s"]
    # Each store at the better of one client and CLIENTS threads (its capacity).
    postgres_best = max(result["inproc_per_s"], result["inproc_clients_per_s"])
    postgres_clients = 1 if postgres_best == result["inproc_per_s"] else args.clients
    figures["postgres_per_sqlite_inproc"] = round(postgres_best / sqlite_best, 3)
    figures["postgres_http_issuances_per_s"] = result["http_per_s"]
    figures["postgres_http_2workers_issuances_per_s"] = result["http_2workers_per_s"]
    figures["postgres_http_2workers_per_1worker"] = result["http_2workers_ratio"]
    alternating = result["http_2workers_ratio_alternating"]
    figures["postgres_http_2workers_per_1worker_alternating_median"] = alternating["median"]
    figures["postgres_http_2workers_per_1worker_alternating_quartiles"] = alternating["quartiles"]
    for name, value in result.items():  # the CPU split, the spread and the ceiling
        if name.startswith(("http_1worker_", "http_2workers_")) and name not in (
            "http_2workers_per_s",
            "http_2workers_ratio",
            "http_2workers_ratio_alternating",
        ):
            figures[f"postgres_{name}"] = value
    figures["postgres_http_clients"] = result["http_clients"]
    figures["postgres_busy_elsewhere"] = result["busy_elsewhere"]
    print(
        f"PostgreSQL: {result['inproc_per_s']:,}/s in-process with one client, "
        f"{result['inproc_clients_per_s']:,}/s with {args.clients} "
        f"({postgres_best / sqlite_best:.0%} of SQLite's best), "
        f"{result['http_per_s']:,}/s over HTTP with one worker, "
        f"{result['http_2workers_per_s']:,}/s with two "
        f"({result['http_2workers_ratio']}x; issue 17's target: 1.6x)"
    )
    stores = alternating_store_ratio(
        (sqlite_url, tmp / "jlis-a", sqlite_clients),
        (url, tmp / "jlis-b", postgres_clients),
        pool,
        args.cards,
    )
    figures["postgres_per_sqlite_inproc_alternating_median"] = stores["median"]
    figures["postgres_per_sqlite_inproc_alternating_quartiles"] = stores["quartiles"]
    figures["postgres_per_sqlite_inproc_alternating_clients"] = {
        "sqlite": sqlite_clients, "postgres": postgres_clients,
    }  # fmt: skip
    _said(
        f"PostgreSQL ({postgres_clients} client threads) per SQLite ({sqlite_clients}) in process",
        stores,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1500, help="issuances per measurement")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--clients", type=int, default=CLIENTS, help="HTTP client threads")
    args = parser.parse_args()
    figures: dict[str, object] = {"issuances_per_measurement": args.cards}
    rsa_per_s = rsa_verify_rate()
    figures["rsa2048_verify_per_s"] = round(rsa_per_s)
    print(f"raw RSA-2048 verify: {figures['rsa2048_verify_per_s']:,}/s")
    with tempfile.TemporaryDirectory() as tmp:
        pool = KeyPool.generate(64, seed=5)
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        sqlite = measure(sqlite_url, Path(tmp) / "jlis-a", pool, args.cards, args.clients)
        figures["inproc_clients"] = args.clients
        figures["alternating_warm_up_chunks"] = WARM_CHUNKS
        figures["sqlite_inproc_issuances_per_s"] = sqlite["inproc_per_s"]
        figures["sqlite_inproc_clients_issuances_per_s"] = sqlite["inproc_clients_per_s"]
        figures["sqlite_http_issuances_per_s"] = sqlite["http_per_s"]
        figures["sqlite_http_other_cpu_ms"] = sqlite["http_1worker_other_cpu_ms"]
        figures["machine_busy_elsewhere"] = sqlite["busy_elsewhere"]
        # Issue 17's ratios, each within this run: in-process (one client) per raw RSA verify,
        # and one HTTP worker per in-process (the better of one client and the run with
        # CLIENTS threads, as below for PostgreSQL's).
        sqlite_best = max(sqlite["inproc_per_s"], sqlite["inproc_clients_per_s"])
        sqlite_clients = 1 if sqlite_best == sqlite["inproc_per_s"] else args.clients
        figures["sqlite_inproc_per_rsa_verify"] = round(sqlite["inproc_per_s"] / rsa_per_s, 4)
        figures["sqlite_http_per_inproc"] = round(sqlite["http_per_s"] / sqlite_best, 3)
        alternating_http = sqlite["http_per_inproc_alternating"]
        figures["sqlite_http_per_inproc_alternating_median"] = alternating_http["median"]
        figures["sqlite_http_per_inproc_alternating_quartiles"] = alternating_http["quartiles"]
        print(
            f"SQLite: {sqlite['inproc_per_s']:,}/s in-process with one client, "
            f"{sqlite['inproc_clients_per_s']:,}/s with {args.clients}, "
            f"{sqlite['http_per_s']:,}/s over HTTP"
        )
        durable, durable_together = durable_sqlite_rates(Path(tmp), pool, args.cards, args.clients)
        figures["sqlite_full_sync_inproc_issuances_per_s"] = round(durable)
        figures["sqlite_full_sync_inproc_clients_issuances_per_s"] = round(durable_together)
        figures["sqlite_full_sync_per_normal"] = round(durable / sqlite["inproc_per_s"], 3)
        print(
            f"SQLite with synchronous=full (each commit synced, durable against a power cut): "
            f"{durable:,.0f}/s in-process with one client, {durable_together:,.0f}/s with "
            f"{args.clients} (their queued issuances share commits)"
        )
        with scratch_schema(args.postgres) as url:
            if url is None:
                print(json.dumps(figures))
                return
            figures.update(
                postgres_figures(
                    url, Path(tmp), pool, args, (sqlite_url, sqlite_best, sqlite_clients)
                )
            )
            busy = figures["machine_busy_elsewhere"] or figures["postgres_busy_elsewhere"]
            figures["machine_busy_elsewhere"] = busy
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
