"""The certificate checks inside real issuances, against the same checks in a hot loop.

Issue 17 scales in-process issuance by the raw RSA-2048 verify rate, a tight loop over one key
and one signature. An issuance runs the same C code (the J-LIS CA's signature over the
certificate, the card's over the nonce) amid everything else it does. This measures, in one
run on one platform (SQLite, in process, one client), the median time of
``MyKeyService._verified_certificate`` (chain, dates, J-LIS status, possession), with the time
of its J-LIS status question taken out (a SQL statement on SQLite; a question sent ahead on
PostgreSQL), in three settings:

- ``in_flow``: inside ``--cards`` real issuances, after as many untimed;
- ``hot_fresh``: in a loop, each time on a freshly parsed certificate of another card (its
  parse not timed, as in the flow, where it comes before the checks), so that its keys are
  set up anew as in an issuance;
- ``hot_same``: in a loop over one parsed certificate (its keys' set-up done once).

and the raw RSA-2048 verify for scale (``bench_mykey``'s). ``in_flow_per_hot_fresh`` is what
running inside an issuance costs the same work. Run: ``python
benchmarks/bench_verify_in_flow.py [--cards N]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from unittest import mock

from bench_mykey import card_proofs, in_process_rate, make_cards, rsa_verify_rate
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from mynahil.reference_impl.jlis import KeyPool
from mynahil.reference_impl.mykey import MyKeyService, Purpose
from mynahil.reference_impl.platform import build_platform

HOT_ROUNDS = 15
"""Passes over the hot loops' certificates."""
HOT_CARDS = 200


def _checks_timed(service: MyKeyService) -> tuple[Callable[..., x509.Certificate], list[int]]:
    """The service's certificate checks wrapped to record each call's nanoseconds, less those
    of the J-LIS status questions it asks: ``service.jlis.status`` is replaced with a timed
    one for that."""
    checks, spent = service._verified_certificate, []

    def timed(*args: object) -> x509.Certificate:
        asked.clear()
        start = time.perf_counter_ns()
        verified = checks(*args)  # type: ignore[arg-type]
        spent.append(time.perf_counter_ns() - start - sum(asked))
        return verified

    asked: list[int] = []
    status = service.jlis.status

    def status_timed(serial: int) -> object:
        start = time.perf_counter_ns()
        answer = status(serial)
        asked.append(time.perf_counter_ns() - start)
        return answer

    service.jlis.status = status_timed  # type: ignore[method-assign,assignment]
    return timed, spent


def _median_us(nanoseconds: list[int]) -> float:
    return round(statistics.median(nanoseconds) / 1000, 1)


def measure(cards: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        platform = build_platform(f"sqlite:///{tmp}/bench.db", Path(tmp) / "jlis")
        try:
            service = platform.mykey
            made = make_cards(platform, 2 * cards, KeyPool.generate(64, seed=5))
            in_process_rate(platform, card_proofs(platform, made[:cards]))  # untimed
            timed, spent = _checks_timed(service)
            proofs = card_proofs(platform, made[cards:])
            with mock.patch.object(service, "_verified_certificate", timed):
                start = time.perf_counter()
                for challenge_id, certificate, signature in proofs:
                    service.issue(challenge_id, certificate, signature)
                issuance_us = (time.perf_counter() - start) / cards * 1e6
            in_flow = list(spent)
            # The hot loops: the same checks on these cards' certificates, signatures made
            # over one nonce (the checks do not care whose challenge it was).
            nonce = service.new_challenge(Purpose.ISSUE).nonce
            signed = []
            for card in made[cards : cards + HOT_CARDS]:
                assert card.auth is not None
                signature = card.auth.private_key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
                signed.append((card.auth.certificate, signature))
            now: datetime = service.clock()
            spent.clear()
            for _ in range(HOT_ROUNDS):
                for certificate, signature in signed:
                    timed(x509.load_der_x509_certificate(certificate), nonce, signature, now)
            hot_fresh = list(spent)
            spent.clear()
            one = x509.load_der_x509_certificate(signed[0][0])
            for _ in range(HOT_ROUNDS * len(signed)):
                timed(one, nonce, signed[0][1], now)
            hot_same = list(spent)
        finally:
            platform.close()
    return {
        "issuance_us": round(issuance_us, 1),
        "in_flow_us": _median_us(in_flow),
        "hot_fresh_us": _median_us(hot_fresh),
        "hot_same_us": _median_us(hot_same),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=2000, help="timed issuances (≥ 200)")
    args = parser.parse_args()
    if args.cards < HOT_CARDS:
        parser.error(f"--cards must be at least {HOT_CARDS}")
    rsa_per_s = rsa_verify_rate()
    measured = measure(args.cards)
    figures = {
        "cards": args.cards,
        "rsa2048_verify_per_s": round(rsa_per_s),
        "rsa2048_verify_us": round(1e6 / rsa_per_s, 1),
        **measured,
        "in_flow_per_hot_fresh": round(measured["in_flow_us"] / measured["hot_fresh_us"], 2),
        "in_flow_per_hot_same": round(measured["in_flow_us"] / measured["hot_same_us"], 2),
        "in_flow_share_of_issuance": round(measured["in_flow_us"] / measured["issuance_us"], 3),
    }
    print(
        f"certificate checks (two RSA-2048 verifications and the rest), median: "
        f"{figures['in_flow_us']} us inside issuances of {figures['issuance_us']} us, "
        f"{figures['hot_fresh_us']} us in a loop on a fresh certificate each time, "
        f"{figures['hot_same_us']} us on one certificate; "
        f"raw verify {figures['rsa2048_verify_us']} us"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
