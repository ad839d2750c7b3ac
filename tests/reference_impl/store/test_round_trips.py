"""Round trips to PostgreSQL per MyKey issuance, counted on the wire: a TCP relay between the
platform and the server counts each time a connection's client speaks again after the server
has answered (a turn). Each turn is a wait for the network and the server: two more cost an
issuance ~10% here (measured with extra ``SELECT 1``s), so a change that adds one is caught.

BEGIN goes with the transaction's first statement and COMMIT with its last (the audit
record's), each pair in one libpq pipeline (``store/prepared.py``), and J-LIS's question
goes ahead with the first (``prepared.send_ahead``). psycopg's own pipeline
mode did the same at a cost of ~65 µs of client CPU a pipeline, more than the loopback round
trip it saved (0.90x with four clients, 0.94x with one); on libpq directly it pays (1.08x and
1.17x in interleaved chunks against seven round trips, ``bench_interleaved.py --postgres``).
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, date, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import make_url

from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.mykey import MyKeyError, Purpose
from mynahil.reference_impl.platform import ReferencePlatform, build_platform


class TurnCountingRelay:
    """Relays TCP connections to ``upstream``; counts the client's turns over all of them."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.turns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            answered = [True]  # the client's first bytes are a turn
            threading.Thread(
                target=self._pump, args=(client, server, answered, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, answered, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, answered: list[bool], from_client: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if from_client and answered[0]:
                        self.turns += 1
                    answered[0] = not from_client
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relayed_platform(postgres_url: str) -> Iterator[tuple[ReferencePlatform, TurnCountingRelay]]:
    url = make_url(postgres_url)
    relay = TurnCountingRelay((url.host or "127.0.0.1", url.port or 5432))
    platform = build_platform(
        url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), None
    )
    try:
        yield platform, relay
    finally:
        platform.close()
        relay.close()


def _proofs(platform: ReferencePlatform, count: int) -> list[tuple[str, bytes, bytes]]:
    rng, keys = random.Random(4), KeyPool.generate(2, seed=6)
    proofs = []
    for _ in range(count):
        card = lifecycle.issue(
            platform.jlis.ca,
            platform.jlis.registry,
            random_holder(rng),
            pin=DEFAULT_PIN,
            password=DEFAULT_PASSWORD,
            issued_on=date.today(),
            keys=keys,
        )
        assert card.auth is not None
        challenge = platform.mykey.new_challenge(Purpose.ISSUE)
        signature = card.auth.private_key.sign(challenge.nonce, padding.PKCS1v15(), hashes.SHA256())
        proofs.append((challenge.challenge_id, card.auth.certificate, signature))
    return proofs


def test_an_issuance_takes_four_round_trips_on_postgresql(
    relayed_platform: tuple[ReferencePlatform, TurnCountingRelay],
) -> None:
    """BEGIN with the challenge's claim, the binding's look-up and J-LIS's status (sent
    ahead); the person and the record; the retirement check with the binding; the audit
    record with COMMIT."""
    platform, relay = relayed_platform
    proofs = _proofs(platform, 8)
    for proof in proofs[:3]:  # connections opened, statements prepared
        platform.mykey.issue(*proof)
    relay.turns = 0
    for proof in proofs[3:]:
        platform.mykey.issue(*proof)
    assert relay.turns / len(proofs[3:]) == 4
    assert platform.store.verify_audit()[1] is None  # the chain still verifies


def test_each_certificate_gets_its_own_status_sent_ahead(
    relayed_platform: tuple[ReferencePlatform, TurnCountingRelay],
) -> None:
    """J-LIS's answer comes with the challenge's round trip, and is the asked certificate's:
    revoked ones are refused and good ones issued, interleaved on the same pooled
    connections, as when each question was a round trip of its own (each good one then
    took 5 round trips, not 4)."""
    platform, relay = relayed_platform
    proofs = _proofs(platform, 7)
    platform.mykey.issue(*proofs[0])  # connections opened, statements prepared
    for revoked in (proofs[2], proofs[5]):
        serial = x509.load_der_x509_certificate(revoked[1]).serial_number
        platform.jlis.registry.revoke(serial, "lost", datetime.now(UTC))
    outcomes, turns = [], []
    for proof in proofs[1:]:
        relay.turns = 0
        try:
            platform.mykey.issue(*proof)
            outcomes.append("issued")
        except MyKeyError as refusal:
            outcomes.append(refusal.code)
        turns.append(relay.turns)
    revoked_code = "certificate_revoked"
    assert outcomes == ["issued", revoked_code, "issued", "issued", revoked_code, "issued"]
    assert [n for n, outcome in zip(turns, outcomes, strict=True) if outcome == "issued"] == [4] * 4
