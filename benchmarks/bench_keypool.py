"""How fast cards can be issued: fresh RSA-2048 keys versus a pooled set of 64.

Figures:
- fresh key generation, keys per second (what a real card's issuance costs);
- building the pool of 64: cold (generate and write the cache file) and warm (load it);
- cards issued per second with pooled keys through ``issue_card``, from an in-memory CA and
  from a CA folder (each serial advanced under flock and fsynced).

Pooled keys are shared between cards: load tests only. Run:
``python benchmarks/bench_keypool.py [--fresh N] [--cards N] [--pool N]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import FreshKeys, JlisCA, KeyPool, issue_card, random_holder

PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


def fresh_keys_per_second(count: int) -> float:
    source = FreshKeys()
    start = time.perf_counter()
    for _ in range(count):
        source.new_key()
    return count / (time.perf_counter() - start)


def cards_per_second(ca: JlisCA, pool: KeyPool, count: int) -> float:
    """Issue ``count`` cards with keys from ``pool``; holders are made up beforehand."""
    rng = random.Random(1)
    holders = [random_holder(rng) for _ in range(count)]
    issued_on = date.today()
    start = time.perf_counter()
    for holder in holders:
        issue_card(ca, holder, pin=PIN, password=PASSWORD, issued_on=issued_on, keys=pool)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=int, default=48, help="fresh keys to time")
    parser.add_argument("--cards", type=int, default=2000, help="cards to issue per CA kind")
    parser.add_argument("--pool", type=int, default=64, help="keys in the pool")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-keypool-") as scratch:
        folder = Path(scratch)
        fresh = fresh_keys_per_second(args.fresh)
        print(f"fresh RSA-2048 keys:            {fresh:8.1f} keys/s")

        start = time.perf_counter()
        KeyPool.generate(args.pool, seed=1, cache_dir=folder / "cache")
        cold = time.perf_counter() - start
        start = time.perf_counter()
        pool = KeyPool.generate(args.pool, seed=1, cache_dir=folder / "cache")
        warm = time.perf_counter() - start
        print(
            f"pool of {args.pool}: cold {cold:6.2f} s (generate + write), warm {warm:6.3f} s (load)"
        )

        in_memory = cards_per_second(JlisCA.create(), pool, args.cards)
        print(f"pooled cards, in-memory CA:     {in_memory:8.1f} cards/s ({args.cards} cards)")
        on_disk = cards_per_second(JlisCA.create(folder / "ca"), pool, args.cards)
        print(f"pooled cards, CA folder:        {on_disk:8.1f} cards/s ({args.cards} cards)")
        print(f"fresh cards (2 keys each), est: {fresh / 2:8.1f} cards/s")

    print(
        json.dumps(
            {
                "fresh_keys_per_s": round(fresh, 1),
                "pool_size": args.pool,
                "pool_cold_s": round(cold, 2),
                "pool_warm_s": round(warm, 3),
                "cards": args.cards,
                "pooled_cards_per_s": round(in_memory, 1),
                "pooled_cards_per_s_folder_ca": round(on_disk, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
