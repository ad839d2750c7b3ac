"""The harness a MyKey platform is certified in: the platform (the reference one on loopback,
or a deployment at a URL) and holders whose cards its J-LIS CA issued."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import httpx

from card_emulator import CardState, EmulatedCard
from mynahil.card import MyNumberCard
from mynahil.transports.inproc import InProcessTransport
from reference_impl.jlis import JlisCA, KeyPool, lifecycle, random_holder
from reference_impl.jlis.registry import CertificateRegistry
from reference_impl.platform import build_platform, serving

from .targets import EMULATED_PASSWORD

__all__ = ["PIN", "PlatformHarness", "platform_harness"]

PIN = "1234"


@dataclass
class PlatformHarness:
    url: str
    ca: JlisCA
    registry: CertificateRegistry
    keys: KeyPool
    issued_on: date
    http: httpx.Client
    _rng: random.Random = field(default_factory=lambda: random.Random(5))

    def new_card(self) -> CardState:
        return lifecycle.issue(
            self.ca, self.registry, random_holder(self._rng), pin=PIN, password=EMULATED_PASSWORD,
            issued_on=self.issued_on, keys=self.keys,
        )  # fmt: skip

    @staticmethod
    def card_api(state: CardState) -> MyNumberCard:
        wire = InProcessTransport(EmulatedCard(state))
        wire.connect()
        return MyNumberCard(wire)


@contextmanager
def platform_harness(url: str | None, ca_folder: Path | None) -> Iterator[PlatformHarness]:
    """``url`` None: the reference platform, served here; else the deployment at ``url``,
    whose CA folder ``ca_folder`` must be readable (cards are issued from it)."""
    folder = Path(tempfile.mkdtemp(prefix="mynahil-platform-suite-"))
    with ExitStack() as stack:
        if url is None:
            ca_folder = folder / "jlis"
            platform = build_platform(f"sqlite:///{folder / 'p.db'}", ca_folder)
            stack.callback(platform.close)
            url = stack.enter_context(serving(platform.app))
        if ca_folder is None:
            raise ValueError("a platform at a URL needs its CA folder (--platform-ca DIR)")
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        now = datetime.fromisoformat(http.get("/v1/health").json()["time"])
        yield PlatformHarness(
            url=url,
            ca=JlisCA.open(ca_folder),
            registry=CertificateRegistry(ca_folder),
            keys=KeyPool.generate(2, seed=5, cache_dir=folder / "keys"),
            issued_on=now.date(),
            http=http,
        )
