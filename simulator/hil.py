"""Hardware in the loop: some simulated holders make the MyKey reservation for real.

Each sampled holder gets an emulated card (J-LIS issuance with pooled keys, for speed), seen
through the fault profile of the channel they were drawn from (``fault_profile`` in the
scenario, a file in ``scenarios/faults/``), and reserves a MyKey ID with the reference client
against the reference platform served in-process over HTTP, or against a running platform
(``--platform URL``) with cards issued from that platform's CA folder (``--ca DIR``). The
measured latency and the share of reservations that failed then replace the scenario's
platform service time and the channels' read-failure chance for the run, and the report shows
both.
"""

from __future__ import annotations

import math
import random
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from mynahil.card_emulator import emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.paths import scenarios_dir

from .scenario import Scenario, set_field

__all__ = ["Measured", "measure"]

FAULTS_DIR = scenarios_dir() / "faults"
PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


@dataclass
class Measured:
    people: int
    target: str
    latencies_ms: list[float] = field(default_factory=list)
    #: channel -> (tries, failures)
    by_channel: dict[str, tuple[int, int]] = field(default_factory=dict)
    assumed: dict[str, float] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else math.nan

    @property
    def sigma(self) -> float:
        if len(self.latencies_ms) < 2:
            return 0.0
        return float(np.std(np.log(np.maximum(self.latencies_ms, 1e-6)), ddof=1))

    def failure(self, channel: str) -> float | None:
        tries, failures = self.by_channel.get(channel, (0, 0))
        return failures / tries if tries else None

    def apply(self, scenario: Scenario) -> Scenario:
        """The scenario with the measured service time and device failures instead of assumed."""
        self.assumed = {"platform.service_median_ms": scenario.platform.service_median_ms}
        if self.latencies_ms:
            scenario = set_field(scenario, "platform.service_median_ms", self.median_ms)
            scenario = set_field(scenario, "platform.service_sigma", min(3.0, self.sigma))
        for channel in scenario.channels:
            measured = self.failure(channel.name)
            if measured is not None and channel.fault_profile:
                self.assumed[f"channels.{channel.name}.read_failure"] = channel.read_failure
                scenario = set_field(
                    scenario, f"channels.{channel.name}.read_failure", min(0.99, measured)
                )
        return scenario

    def as_dict(self) -> dict[str, Any]:
        assumed_ms = self.assumed.get("platform.service_median_ms", math.nan)
        rows = [["platform median latency (ms)", f"{assumed_ms:.3g}", f"{self.median_ms:.3g}"]]
        for name, (tries, failures) in sorted(self.by_channel.items()):
            assumed = self.assumed.get(f"channels.{name}.read_failure")
            rows.append([
                f"{name}: failed reservations",
                "-" if assumed is None else f"{assumed:.1%} per read",
                f"{failures}/{tries}",
            ])  # fmt: skip
        return {
            "people": self.people,
            "target": self.target,
            "median_ms": self.median_ms,
            "sigma": self.sigma,
            "assumed_median_ms": self.assumed.get("platform.service_median_ms"),
            "failures": {k: list(v) for k, v in self.by_channel.items()},
            "rows": rows,
        }


class _TimedCard:
    """Counts the time spent inside the card (and its faulty field), to leave the platform's."""

    def __init__(self, card: Any) -> None:
        self.card = card
        self.seconds = 0.0

    @property
    def atr(self) -> bytes:
        return bytes(self.card.atr)

    def reset(self) -> bytes:
        return bytes(self.card.reset())

    def transmit(self, raw: bytes) -> bytes:
        start = time.perf_counter()
        try:
            return bytes(self.card.transmit(raw))
        finally:
            self.seconds += time.perf_counter() - start


def measure(
    scenario: Scenario,
    people: int,
    *,
    seed: int = 1,
    platform_url: str | None = None,
    ca: Path | None = None,
    ca_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Measured:
    """Reserve MyKey IDs for ``people`` holders drawn by channel share; time each one.

    Without ``platform_url`` the reference platform is served in-process (its own CA issues
    the cards). With it, the cards are issued from ``ca`` (that platform's J-LIS CA folder, so
    it trusts them) on the platform's business date, all before the first reservation (the
    server re-reads the registry once, not inside a measured request). An https platform's
    certificate must chain to ``ca_file`` (default: ``$MYNAHIL_CA_FILE``, else the system's
    trust store).
    """
    from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
    from mynahil.reference_impl.platform import build_platform, serving

    if platform_url is not None and ca is None:
        raise ValueError("--platform needs --ca DIR: the platform's J-LIS CA folder")
    rng = random.Random(seed)
    shares = [c.share for c in scenario.channels]
    drawn = rng.choices(scenario.channels, weights=shares, k=people)
    pool = KeyPool.generate(8, seed=seed)
    if platform_url is not None and ca is not None:
        from mynahil.tls import client_verify

        verify = client_verify(ca_file)
        states = _issue_from_folder(platform_url, ca, people, seed=seed, pool=pool, verify=verify)
        result = Measured(people, f"the platform at {platform_url}")
        _reserve_all(
            platform_url, drawn, iter(states).__next__, rng, result, progress, verify=verify
        )
        return result
    result = Measured(people, "the reference platform, in-process over HTTP")
    with tempfile.TemporaryDirectory() as tmp:
        platform = build_platform(f"sqlite:///{tmp}/hil.db", Path(tmp) / "jlis")
        try:
            with serving(platform.app) as url:

                def issue() -> Any:
                    return lifecycle.issue(
                        platform.jlis.ca, platform.jlis.registry, random_holder(rng),
                        pin=PIN, password=PASSWORD, issued_on=date.today(), keys=pool,
                    )  # fmt: skip

                _reserve_all(url, drawn, issue, rng, result, progress)
        finally:
            platform.close()
    return result


def _issue_from_folder(
    url: str, ca: Path, count: int, *, seed: int, pool: Any, verify: ssl.SSLContext | bool
) -> list[Any]:
    """``count`` cards from the CA in ``ca``, dated the platform's business day (``--as-of``),
    which an https platform tells only once its certificate verified with ``verify``."""
    import httpx

    from mynahil.reference_impl.client import PlatformClient
    from mynahil.reference_impl.jlis import CertificateRegistry, JlisCA, lifecycle
    from mynahil.tls import tls_failure

    try:
        with PlatformClient.connect(url, timeout=10, verify=verify) as platform:
            day = platform.business_time().date()
    except (httpx.HTTPError, ValueError) as exc:
        why = tls_failure(exc) or f"no platform answers there ({exc})"
        raise OSError(f"--platform {url}: {why}") from None
    authority = JlisCA.load(ca)  # CAFolderError (a ValueError) names what is missing
    registry = CertificateRegistry(ca)
    # Holders apart from the draw's stream: the same channels as in-process.
    return lifecycle.issue_many(
        authority, registry, count, holders=random.Random(seed + 1), issued_on=day, keys=pool
    )


def _reserve_all(
    url: str,
    drawn: list[Any],
    issue: Callable[[], Any],
    rng: random.Random,
    result: Measured,
    progress: Callable[[int, int], None] | None,
    *,
    verify: ssl.SSLContext | bool | None = None,
) -> None:
    """Each drawn holder's card, behind its channel's faults, reserves a MyKey ID at ``url``
    (an https one verified with ``verify``; None: the client's default)."""
    from mynahil.card_emulator import EmulatedCard, FaultyCard, load_fault_profile
    from mynahil.reference_impl.client import ClientRefusal, PlatformClient

    client = PlatformClient.connect(url, verify=verify)
    try:
        for i, channel in enumerate(drawn):
            card: Any = EmulatedCard(issue())
            if channel.fault_profile:
                path = FAULTS_DIR / f"{channel.fault_profile}.toml"
                profile = load_fault_profile(str(path)).with_seed(rng.randrange(2**31))
                card = FaultyCard(card, profile)
            timed = _TimedCard(card)
            tries, failures = result.by_channel.get(channel.name, (0, 0))
            start = time.perf_counter()
            try:
                client.reserve(emulated_reader(timed), PIN)
                # The platform's share: the whole reservation minus the card's time.
                elapsed = time.perf_counter() - start - timed.seconds
                result.latencies_ms.append(elapsed * 1000)
            except (ClientRefusal, OSError, ValueError, RuntimeError):
                failures += 1
            except Exception:  # a card pulled mid-command surfaces as the card's error
                failures += 1
            result.by_channel[channel.name] = (tries + 1, failures)
            if progress:
                progress(i + 1, len(drawn))
    finally:
        client.http.close()
