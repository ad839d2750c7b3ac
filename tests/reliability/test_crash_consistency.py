"""SIGKILL the platform server mid-load, again and again; nothing acknowledged is ever lost.

A real `mynahil serve` process (SQLite file or PostgreSQL) takes MyKey issuances and operator
report batches at full speed from two client threads while the test kills it with SIGKILL at
random moments and starts it again. The clients retry what was not acknowledged (reports with
the same idempotency keys). Afterwards the store is read directly: every acknowledged issuance
is bound to the ID the client was told, every acknowledged report holds the points it was
answered, nothing was granted twice, the ledger's invariants and the audit chain hold.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.card_emulator import CardState, emulated_reader
from mynahil.reference_impl.client import ClientRefusal, PlatformClient
from mynahil.reference_impl.gateways import LocalAccountCheck
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.operator import OperatorClient
from mynahil.reference_impl.platform import build_platform, wait_healthy
from mynahil.reference_impl.points import (
    Application,
    Operator,
    PaymentService,
    PointsError,
    Report,
    TransactionKind,
)
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.reference_impl.store import SqlStore
from tests.support import MYNAHIL, PASSWORD, PIN, free_port

AS_OF = datetime(2020, 9, 10, 3, 0, tzinfo=UTC)
# Charges made after the applications (AS_OF - 1 day) and before the served clock (which
# starts at the --as-of date): a report dated after the platform's clock is refused.
CHARGES_FROM = AS_OF - timedelta(hours=20)
OPERATOR, SERVICE = "crash-op", "crash-pay"
KILLS = 5
PEOPLE, BATCH, CARDS = 40, 50, 30
T = TypeVar("T")


@dataclass
class Acknowledged:
    points: dict[str, int] = field(default_factory=dict)  # idempotency key -> points answered
    ids: dict[int, str] = field(default_factory=dict)  # certificate serial -> MyKey ID
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def prepare_books(
    db_url: str,
    folder: Path,
    key: Ed25519PrivateKey,
    *,
    tag: str = "crash",
    people: int = PEOPLE,
    cards: int = CARDS,
    seed: int = 3,
) -> tuple[list[str], list[CardState]]:
    """The operator ``{tag}-op`` and its service ``{tag}-pay``, ``people`` who applied for it
    (their accounts returned) and ``cards`` cards J-LIS issued, made in this process before
    the servers start; the crash test and the many-workers tests share it."""
    operator, service = f"{tag}-op", f"{tag}-pay"
    title = f"{tag.capitalize()} Pay"
    platform = build_platform(db_url, folder, accounts=LocalAccountCheck({}), as_of=AS_OF)
    try:
        platform.points.register_operator(
            Operator(operator, title, public_key_bytes(key)),
            [PaymentService(service, operator, title)],
        )
        accounts = []
        with platform.store.transaction() as uow:
            for n in range(people):
                person = uow.person(f"{tag}-person-{n}", AS_OF)
                record = uow.create_record(f"{tag[0].upper()}{n:07d}", AS_OF, person)
                account = f"acct-{n}"
                uow.link_account(service, account, record.record_id)
                uow.add_application(
                    Application(0, "round1", record.record_id, service, account, operator,
                                AS_OF - timedelta(days=1), date(2020, 6, 1), 0, person)
                )  # fmt: skip
                accounts.append(account)
        rng = random.Random(seed)
        pool = KeyPool.generate(4, seed=3, cache_dir=folder / "keys")
        issued = [
            lifecycle.issue(
                platform.jlis.ca,
                platform.jlis.registry,
                random_holder(rng),
                pin=PIN,
                password=PASSWORD,
                issued_on=date(2020, 7, 1),
                keys=pool,
            )
            for _ in range(cards)
        ]
        return accounts, issued
    finally:
        platform.close()


def _until_acknowledged(attempt: Callable[[], T], stop: threading.Event, acks: Acknowledged) -> T:
    """Retry through crashes: the server may be down, restarting, or gone mid-request."""
    while True:
        try:
            return attempt()
        except (httpx.HTTPError, ClientRefusal, PointsError) as exc:
            code = getattr(exc, "code", "")
            if code and code not in ("platform_unreachable", "challenge_unknown"):
                raise
            with acks.lock:
                acks.retries += 1
            if stop.is_set():
                raise
            time.sleep(0.05)


def _report_all(url: str, key: Ed25519PrivateKey, accounts: list[str], acks: Acknowledged,
                stop: threading.Event, wind_down: threading.Event) -> None:  # fmt: skip
    rng = random.Random(5)
    client = OperatorClient.connect(url, Signer(OPERATOR, key), timeout=5)
    b = 0
    while not wind_down.is_set():
        b += 1
        batch = [
            Report(f"k{b}-{i}", f"t{b}-{i}", SERVICE, rng.choice(accounts),
                   TransactionKind.CHARGE, rng.randint(100, 3000),
                   CHARGES_FROM + timedelta(seconds=b * BATCH + i))
            for i in range(BATCH)
        ]  # fmt: skip
        decisions = _until_acknowledged(partial(client.report, batch), stop, acks)
        with acks.lock:
            for d in decisions:
                acks.points.setdefault(d.idempotency_key, d.points)


def _issue_all(url: str, cards: list[CardState], acks: Acknowledged, stop: threading.Event,
               wind_down: threading.Event) -> None:  # fmt: skip
    """Reserve each card in turn, round and round: the second time is the same-ID path."""
    client = PlatformClient.connect(url, timeout=5)
    for state in cycle(cards):
        if wind_down.is_set():
            return
        assert state.auth is not None
        serial = x509.load_der_x509_certificate(state.auth.certificate).serial_number

        def reserve(state: CardState = state) -> str:
            return client.reserve(emulated_reader(state), PIN)

        mykey_id = _until_acknowledged(reserve, stop, acks)
        with acks.lock:
            assert acks.ids.setdefault(serial, mykey_id) == mykey_id, "a card changed its ID"


def _start(db_url: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MYNAHIL, "serve", "--db", db_url, "--ca", str(folder), "--port", str(port),
         "--as-of", AS_OF.date().isoformat()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_kill_minus_nine_loses_nothing_acknowledged(store_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "jlis"
    key = Ed25519PrivateKey.generate()
    accounts, cards = prepare_books(store_url, folder, key)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    acks, stop, wind_down = Acknowledged(), threading.Event(), threading.Event()
    server = _start(store_url, folder, port)
    wait_healthy(url, server)
    workers = [
        threading.Thread(target=_report_all, args=(url, key, accounts, acks, stop, wind_down)),
        threading.Thread(target=_issue_all, args=(url, cards, acks, stop, wind_down)),
    ]
    for worker in workers:
        worker.start()
    rng = random.Random(int(os.environ.get("MYNAHIL_CRASH_SEED", "11")))
    kills = 0
    try:
        while kills < KILLS and any(w.is_alive() for w in workers):
            time.sleep(rng.uniform(0.2, 1.0))
            server.send_signal(signal.SIGKILL)
            server.wait()
            kills += 1
            server = _start(store_url, folder, port)
            wait_healthy(url, server)
        time.sleep(0.5)  # some load on the last restart too
        wind_down.set()
        for worker in workers:
            worker.join(timeout=300)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=10)
    assert kills == KILLS
    assert all(not w.is_alive() for w in workers), "a client thread hung"
    assert len(acks.points) >= KILLS * BATCH
    assert acks.ids

    with SqlStore.open(store_url, migrate=False) as store:
        with store.transaction() as uow:
            stored = uow.transactions_by_key(OPERATOR, set(acks.points))
            for serial, mykey_id in acks.ids.items():
                record = uow.record_by_serial(serial)
                assert record is not None, f"acknowledged issuance of {serial} lost"
                assert record.mykey_id == mykey_id
            ledger_total = sum(e.points for e in uow.ledger_entries())
        assert {k: t.points for k, t in stored.items()} == acks.points
        assert ledger_total == sum(acks.points.values())  # nothing granted twice
        checked, problem = store.verify_audit()
        assert problem is None
        assert checked > 0
    platform = build_platform(store_url, folder, accounts=LocalAccountCheck({}), as_of=AS_OF)
    try:
        assert platform.points.violations() == []
    finally:
        platform.close()
    print(f"{kills} kills survived; {acks.retries} client retries; nothing lost")
