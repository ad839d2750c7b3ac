"""A holder's request p95 while anonymous password guessers flood `mynahil serve` (SQLite).

One `mynahil serve` process on a loopback port with a SQLite database. A holder (a real
emulated card with a MyKey ID and a page password) logs in with the card (a challenge, then
the card's answer) and shows the ID, over and over, each request timed on its own (the card's
signing between them is the card's work, not the platform's): first alone, the reference
figure of the same run on the same machine; then while ``--guessers`` threads (60 by default)
send wrong passwords for random well-formed MyKey IDs as fast as the server answers, for
``--seconds`` (30). Target: the holder's p95 at most 500 ms, and not one 5xx in any answer.

The holder's own password logins are timed too and reported apart (``holder_password_*``):
they queue for the same scrypt lane as the guesses, first come first served, because favouring
real IDs there would tell a guesser which IDs are real.

Bounded: the guessers stop at the deadline, every request has a timeout, and nothing leaves
127.0.0.1. Run: ``python benchmarks/bench_password_flood.py [--guessers 60] [--seconds 30]``.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.jlis import CertificateRegistry, JlisCA, lifecycle, random_holder
from mynahil.reference_impl.mykey import ALPHABET
from mynahil.reference_impl.platform import serve_process
from mynahil.stats import percentile

PIN, PASSWORD = DEFAULT_PIN, "holder-pass-2020"  # the MyKey password, not the card's
TARGET_P95_MS = 500.0
TIMEOUT = 30.0


def p95(samples: list[float]) -> float:
    return percentile(samples, 95, default=float("nan"))


class Holder:
    """The holder's requests, each timed on its own (milliseconds)."""

    def __init__(self, url: str, state: CardState) -> None:
        self.state = state
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT)
        client = PlatformClient(self.http)
        self.mykey_id = client.reserve(emulated_reader(state), PIN)
        token = client.login(emulated_reader(state), PIN)
        auth = {"Authorization": f"Bearer {token}"}
        self.http.put("/v1/mykey/me/password", json={"password": PASSWORD}, headers=auth)

    def _timed(
        self, statuses: Counter[int], latencies: list[float], method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            answer = self.http.request(method, path, **kw)
        except httpx.TimeoutException:
            answer = None
        latencies.append((time.perf_counter() - start) * 1000)
        statuses[answer.status_code if answer is not None else 599] += 1
        return answer

    def run(self, seconds: float, statuses: Counter[int]) -> tuple[list[float], list[float]]:
        """(card login and page requests, own password logins) until ``seconds`` pass."""
        page: list[float] = []
        password: list[float] = []
        card = emulated_reader(self.state)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            challenge = self._timed(
                statuses, page, "POST", "/v1/mykey/challenges", json={"purpose": "login"}
            )
            if challenge is None or challenge.status_code != 201:
                continue
            body = challenge.json()
            certificate, signature = card.authenticate(PIN, base64.b64decode(body["nonce"]))
            session = self._timed(
                statuses, page, "POST", "/v1/mykey/sessions/card",
                json={
                    "challenge_id": body["challenge_id"],
                    "certificate": base64.b64encode(certificate).decode(),
                    "signature": base64.b64encode(signature).decode(),
                },
            )  # fmt: skip
            if session is None or session.status_code != 201:
                continue
            auth = {"Authorization": f"Bearer {session.json()['token']}"}
            self._timed(statuses, page, "GET", "/v1/mykey/me", headers=auth)
            self._timed(
                statuses, password, "POST", "/v1/mykey/sessions/password",
                json={"mykey_id": self.mykey_id, "password": PASSWORD},
            )  # fmt: skip
        return page, password


def guess(
    url: str, deadline: float, seed: int, statuses: Counter[int], lock: threading.Lock
) -> None:
    rng = random.Random(seed)
    seen: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        while time.monotonic() < deadline:
            mykey_id = "".join(rng.choice(ALPHABET) for _ in range(8))
            try:
                answer = http.post(
                    "/v1/mykey/sessions/password",
                    json={"mykey_id": mykey_id, "password": f"guess-{rng.randrange(10**6)}"},
                )
                seen[answer.status_code] += 1
            except httpx.TimeoutException:
                seen[599] += 1
            except httpx.TransportError:
                seen[598] += 1  # refused or reset: the server could not take it
    with lock:
        statuses.update(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guessers", type=int, default=60, help="concurrent guessers (1-200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="flood length (1-300)")
    args = parser.parse_args()
    if not 1 <= args.guessers <= 200:
        parser.error("--guessers must be 1 to 200")
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be 1 to 300")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jlis"
        ca = JlisCA.open(folder)
        state = lifecycle.issue(
            ca, CertificateRegistry(folder), random_holder(random.Random(1)),
            pin=PIN, password=DEFAULT_PASSWORD, issued_on=date.today(),
        )  # fmt: skip
        db_url = f"sqlite:///{Path(tmp) / 'platform.db'}"
        with serve_process(db_url, folder) as (url, _process):
            holder = Holder(url, state)
            alone_statuses: Counter[int] = Counter()
            alone, alone_password = holder.run(min(args.seconds, 10.0), alone_statuses)
            statuses: Counter[int] = Counter()
            holder_statuses: Counter[int] = Counter()
            lock = threading.Lock()
            deadline = time.monotonic() + args.seconds
            guessers = [
                threading.Thread(target=guess, args=(url, deadline, n, statuses, lock))
                for n in range(args.guessers)
            ]
            for thread in guessers:
                thread.start()
            flooded, flooded_password = holder.run(args.seconds, holder_statuses)
            for thread in guessers:
                thread.join(timeout=TIMEOUT + 5)
            holder.http.close()
    every = alone_statuses + holder_statuses + statuses
    server_errors = sum(n for status, n in every.items() if status >= 500)
    result = {
        "benchmark": "password_flood",
        "store": "sqlite",
        "guessers": args.guessers,
        "seconds": args.seconds,
        "holder_p95_ms": round(p95(flooded), 1),
        "holder_median_ms": round(statistics.median(flooded), 1) if flooded else None,
        "holder_requests": len(flooded),
        "reference_holder_p95_ms_without_guessers": round(p95(alone), 1),
        "holder_password_p95_ms": round(p95(flooded_password), 1),
        "reference_holder_password_p95_ms_without_guessers": round(p95(alone_password), 1),
        "guesses": sum(statuses.values()),
        "guess_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "holder_statuses": {str(k): v for k, v in sorted(holder_statuses.items())},
        "5xx": server_errors,
        "target_p95_ms": TARGET_P95_MS,
        "met": p95(flooded) <= TARGET_P95_MS and server_errors == 0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
