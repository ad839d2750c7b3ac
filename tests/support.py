"""Helpers for tests: building cards quickly, and the PC/SC stack when the machine has it."""

from __future__ import annotations

import os
import random
from datetime import date
from pathlib import Path
from typing import Protocol

from card_emulator import CardState
from reference_impl.jlis import JlisCA, KeyPool, issue_card, random_holder

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PIN = "1234"
PASSWORD = "ABC123"


class CardFactory(Protocol):
    def __call__(
        self,
        *,
        issued_on: date | None = None,
        birth_date: date | None = None,
        with_certificates: bool = True,
        atr_profile: str = "contact",
    ) -> CardState: ...


def make_card_factory(folder: Path, pool_size: int = 4) -> CardFactory:
    ca = JlisCA.create(folder / "ca")
    pool = KeyPool.generate(pool_size, seed=7, cache_dir=folder / "keys")
    rng = random.Random(7)

    def factory(
        *,
        issued_on: date | None = None,
        birth_date: date | None = None,
        with_certificates: bool = True,
        atr_profile: str = "contact",
    ) -> CardState:
        holder = random_holder(rng, birth_date=birth_date or date(1985, 6, 15))
        return issue_card(
            ca,
            holder,
            pin=PIN,
            password=PASSWORD,
            issued_on=issued_on or date.today(),
            with_certificates=with_certificates,
            keys=pool,
            atr_profile=atr_profile,
        )

    return factory
