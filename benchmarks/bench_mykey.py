"""MyKey ID issuances per second: in-process and over HTTP, on SQLite and PostgreSQL.

Each issuance is what the platform does with a card's answer: consume the challenge, check
the certificate's chain, dates, J-LIS status and the signature over the nonce, bind a new
MyKey ID, and append the audit record, committed before the answer. The cards' signatures
are made beforehand (that work is the card's, not the platform's); the raw RSA-2048 verify
rate is measured in the same run for scale, since every issuance verifies two signatures.

On PostgreSQL the server is also measured with two workers (``serve --workers 2``) right
after one, with the same number of clients, and their ratio is printed
(``postgres_http_2workers_per_1worker``); for each HTTP run the CPU seconds per issuance of
the server's processes, of this client process and of the whole machine say where the time
went (on a machine of 2 cores the clients and PostgreSQL share them with the workers).

Run: ``python benchmarks/bench_mykey.py [--cards N] [--postgres URL]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rich.progress import track
from scratch_postgres import POSTGRES, scratch_schema

from card_emulator import CardState
from card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from reference_impl.jlis import KeyPool, lifecycle, random_holder
from reference_impl.mykey import Purpose
from reference_impl.platform import ReferencePlatform, build_platform, serve_process

Proof = tuple[str, bytes, bytes]
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


def in_process_rate(platform: ReferencePlatform, proofs: list[Proof]) -> float:
    start = time.perf_counter()
    for challenge_id, certificate, signature in proofs:
        platform.mykey.issue(challenge_id, certificate, signature)
    return len(proofs) / (time.perf_counter() - start)


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


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent busy so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def http_rate(
    db_url: str, folder: Path, proofs: list[Proof], clients: int, workers: int = 1
) -> dict[str, float]:
    """`mynahil serve` (``workers`` uvicorn workers) in its own process on loopback; CLIENTS
    keep-alive clients send requests back to back (holders arrive concurrently; one client
    alone would measure httpx's latency, not the server). The rate, and CPU milliseconds per
    issuance: the server's processes, this (client) process, the whole machine."""
    import base64

    bodies = [
        {
            "challenge_id": c,
            "certificate": base64.b64encode(cert).decode(),
            "signature": base64.b64encode(sig).decode(),
        }
        for c, cert, sig in proofs
    ]

    def send(share: list[dict[str, str]]) -> None:
        # http.client on a keep-alive connection: a load generator light enough that the
        # server, not the client, sets the pace (httpx cost ~1 ms of client CPU a request).
        parsed = urlsplit(url)
        connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
        try:
            for body in share:
                payload = json.dumps(body).encode()
                connection.request(
                    "POST", "/v1/mykey/ids", payload, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                answer = response.read()
                if response.status != 201:
                    raise SystemExit(f"issuance failed: {answer!r}")
        finally:
            connection.close()

    with (
        serve_process(db_url, folder, workers=workers) as (url, process),
        ThreadPoolExecutor(clients) as pool,
    ):
        server, client, machine = _tree_cpu(process.pid), time.process_time(), _machine_busy()
        start = time.perf_counter()
        list(pool.map(send, [bodies[i::clients] for i in range(clients)]))
        elapsed = time.perf_counter() - start
        after = _tree_cpu(process.pid)
        spent = {pid: after[pid] - server.get(pid, 0.0) for pid in after}
        busiest = max(spent.values())  # with workers: how evenly connections were spread
        per = 1000 / len(bodies)  # seconds in total -> milliseconds per issuance
        return {
            "per_s": len(bodies) / elapsed,
            "busiest_process_share": busiest / max(sum(spent.values()), 1e-9),
            "server_cpu_ms": sum(spent.values()) * per,
            "client_cpu_ms": (time.process_time() - client) * per,
            "machine_cpu_ms": (_machine_busy() - machine) * per,
            "wall_ms": elapsed * per,
        }


def _where_the_time_went(label: str, run: dict[str, float]) -> None:
    print(
        f"  {label}: {run['per_s']:,.0f}/s; per issuance {run['wall_ms']:.2f} ms wall, CPU "
        f"{run['server_cpu_ms']:.2f} ms server, {run['client_cpu_ms']:.2f} ms client, "
        f"{run['machine_cpu_ms']:.2f} ms machine ({psutil.cpu_count()} cores); the busiest "
        f"server process did {run['busiest_process_share']:.0%} of the server's work"
    )


def measure(
    db_url: str,
    folder: Path,
    pool: KeyPool,
    count: int,
    clients: int = CLIENTS,
    *,
    two_workers: bool = False,
) -> dict[str, float]:
    """In-process, then over HTTP with one worker (and, with ``two_workers``, two)."""
    runs = 3 if two_workers else 2
    platform = build_platform(db_url, folder)
    try:
        cards = make_cards(platform, runs * count, pool)
        inproc = in_process_rate(platform, card_proofs(platform, cards[:count]))
        one = http_rate(db_url, folder, card_proofs(platform, cards[count : 2 * count]), clients)
        _where_the_time_went("HTTP, 1 worker", one)
        figures: dict[str, float] = {
            "inproc_per_s": round(inproc),
            "http_per_s": round(one["per_s"]),
        }
        if two_workers:
            proofs = card_proofs(platform, cards[2 * count :])
            two = http_rate(db_url, folder, proofs, clients, workers=2)
            _where_the_time_went("HTTP, 2 workers", two)
            figures["http_2workers_per_s"] = round(two["per_s"])
            figures["http_2workers_ratio"] = round(two["per_s"] / one["per_s"], 2)
            figures["http_2workers_busiest_share"] = round(two["busiest_process_share"], 2)
            for name in ("server_cpu_ms", "client_cpu_ms", "machine_cpu_ms"):
                figures[f"http_1worker_{name}"] = round(one[name], 2)
                figures[f"http_2workers_{name}"] = round(two[name], 2)
        count_checked, problem = platform.store.verify_audit()
        if problem is not None or count_checked < runs * count:
            raise SystemExit(f"audit chain broken after the run: {problem}")
        return figures
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1500, help="issuances per measurement")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--clients", type=int, default=CLIENTS, help="HTTP client threads")
    args = parser.parse_args()
    figures: dict[str, object] = {"issuances_per_measurement": args.cards}
    figures["rsa2048_verify_per_s"] = round(rsa_verify_rate())
    print(f"raw RSA-2048 verify: {figures['rsa2048_verify_per_s']:,}/s")
    with tempfile.TemporaryDirectory() as tmp:
        pool = KeyPool.generate(64, seed=5)
        sqlite = measure(
            f"sqlite:///{tmp}/bench.db", Path(tmp) / "jlis-a", pool, args.cards, args.clients
        )
        figures["sqlite_inproc_issuances_per_s"] = sqlite["inproc_per_s"]
        figures["sqlite_http_issuances_per_s"] = sqlite["http_per_s"]
        print(
            f"SQLite: {sqlite['inproc_per_s']:,}/s in-process, {sqlite['http_per_s']:,}/s over HTTP"
        )
        with scratch_schema(args.postgres) as url:
            if url is None:
                print(json.dumps(figures))
                return
            result = measure(
                url, Path(tmp) / "jlis-b", pool, args.cards, args.clients, two_workers=True
            )
            figures["postgres_inproc_issuances_per_s"] = result["inproc_per_s"]
            figures["postgres_http_issuances_per_s"] = result["http_per_s"]
            figures["postgres_http_2workers_issuances_per_s"] = result["http_2workers_per_s"]
            figures["postgres_http_2workers_per_1worker"] = result["http_2workers_ratio"]
            figures["postgres_http_2workers_busiest_share"] = result["http_2workers_busiest_share"]
            for name, value in result.items():
                if name.startswith("http_") and name.endswith("_ms"):
                    figures[f"postgres_{name}"] = value
            print(
                f"PostgreSQL: {result['inproc_per_s']:,}/s in-process, "
                f"{result['http_per_s']:,}/s over HTTP with one worker, "
                f"{result['http_2workers_per_s']:,}/s with two "
                f"({result['http_2workers_ratio']}x; issue 17's target: 1.6x)"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
