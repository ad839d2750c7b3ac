"""The harness a MyKey platform is certified in: the platform (the reference one on loopback,
or a deployment at a URL) and holders whose cards its J-LIS CA issued.

The reference platform also gets two sample payment services, connected to it, so the point
rules a holder meets (one payment service, chosen for good; points that follow the MyKey ID)
can be checked; a deployment at a URL has no payment service the harness controls, and those
tests skip there."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from mynahil.card import MyNumberCard
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PIN
from mynahil.reference_impl.client import PlatformClient
from mynahil.reference_impl.jlis import JlisCA, KeyPool, lifecycle, random_holder
from mynahil.reference_impl.jlis.registry import CertificateRegistry
from mynahil.reference_impl.platform import build_platform, serving
from mynahil.reference_impl.sandbox import SampleOperator, sample_operator
from mynahil.tls import TlsConfigError, client_verify, tls_failure

from .operator_harness import CAMPAIGN_ID, HarnessError, conformance_scheme
from .platform_defects import make_defective
from .targets import EMULATED_PASSWORD

__all__ = ["PIN", "PaymentAccount", "PlatformHarness", "platform_harness"]

PIN = DEFAULT_PIN


@dataclass(frozen=True, slots=True)
class PaymentAccount:
    """An account a holder may apply with: (payment service ID, security code) at a service."""

    service_id: str
    account_id: str
    security_code: str


class TravelClock:
    """Real time plus an offset the harness moves forward (the reference platform only)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class PlatformHarness:
    url: str
    ca: JlisCA
    registry: CertificateRegistry
    keys: KeyPool
    issued_on: date
    http: httpx.Client
    services: dict[str, SampleOperator] = field(default_factory=dict)  # none at a URL
    clock: TravelClock | None = None  # the platform's and the tills' clock; None at a URL
    helpdesk_token: str | None = None  # a help-desk staff credential; None at a URL
    window_token: str | None = None  # a municipal-window staff credential; None at a URL
    campaign_id: str = CAMPAIGN_ID
    _rng: random.Random = field(default_factory=lambda: random.Random(5))

    def open_account(self, service_id: str) -> PaymentAccount:
        account = self.services[service_id].books.open_account("Conformance Holder")
        return PaymentAccount(service_id, account.account_id, account.security_code)

    def charge(self, account: PaymentAccount, amount: int) -> int:
        """A charge rung up at the service's till, reported to the platform: the points it
        decided."""
        points: int = self.till(account, amount)["points"]
        return points

    def till(
        self, account: PaymentAccount, amount: int, *, occurred_at: datetime | None = None
    ) -> dict[str, Any]:
        """A charge rung up at the service's till (made now, or at ``occurred_at``) and
        reported to the platform: the till's answer (transaction_id, outcome, points)."""
        body: dict[str, Any] = {"account_id": account.account_id, "amount": amount}
        if occurred_at is not None:
            body["occurred_at"] = occurred_at.isoformat()
        till = self.http.post(f"{self.services[account.service_id].url}/v1/till", json=body)
        assert till.status_code == 200, till.text
        answer: dict[str, Any] = till.json()
        return answer

    def new_card(
        self,
        *,
        born: date | None = None,
        issued_on: date | None = None,
        applied_on: date | None = None,
    ) -> CardState:
        """A card issued today (or ``issued_on``) to a random adult (or one ``born`` then),
        applied for a month before (or on ``applied_on``, as J-LIS records it)."""
        return lifecycle.issue(
            self.ca, self.registry, random_holder(self._rng, birth_date=born), pin=PIN,
            password=EMULATED_PASSWORD, issued_on=issued_on or self.issued_on, keys=self.keys,
            applied_on=applied_on,
        )  # fmt: skip

    def travel(self, by: timedelta) -> None:
        """Move the platform's (and the tills') clock forward; only where the harness runs it."""
        if self.clock is None:
            raise RuntimeError("the harness cannot move the clock of a platform at a URL")
        self.clock.offset += by

    @staticmethod
    def card_api(state: CardState) -> MyNumberCard:
        return emulated_reader(state)


@contextmanager
def platform_harness(
    url: str | None,
    ca_folder: Path | None,
    defect: str | None = None,
    *,
    ca_file: str | Path | None = None,
) -> Iterator[PlatformHarness]:
    """``url`` None: the reference platform, served here; else the deployment at ``url``,
    whose CA folder ``ca_folder`` must be readable (cards are issued from it) and whose TLS
    certificate, for an https ``url``, chains to ``ca_file`` (default: ``client_verify()``).
    HarnessError when it cannot be reached or its certificate does not verify."""
    folder = Path(tempfile.mkdtemp(prefix="mynahil-platform-suite-"))
    services: dict[str, SampleOperator] = {}
    clock: TravelClock | None = None
    helpdesk_token: str | None = None
    window_token: str | None = None
    with ExitStack() as stack:
        if url is None:
            ca_folder = folder / "jlis"
            clock = TravelClock()
            platform = build_platform(
                f"sqlite:///{folder / 'p.db'}", ca_folder,
                scheme=conformance_scheme(datetime.now(UTC).date()), clock=clock,
            )  # fmt: skip
            stack.callback(platform.close)
            if defect:
                make_defective(platform, defect)
            _member, helpdesk_token = platform.staff.add("Conformance help desk", "helpdesk")
            _member, window_token = platform.staff.add("Conformance window", "municipal-window")
            url = stack.enter_context(serving(platform.app))
            for name in ("pay-a", "pay-b"):
                services[name] = stack.enter_context(
                    sample_operator(
                        platform, url, operator_id=f"{name}-inc", operator_name=f"{name} Inc.",
                        service_id=name, service_name=name, clock=clock,
                    )
                )  # fmt: skip
        if ca_folder is None:
            raise ValueError("a platform at a URL needs its CA folder (--platform-ca DIR)")
        try:
            verify = client_verify(ca_file)
        except TlsConfigError as exc:
            raise HarnessError(str(exc)) from None
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30, verify=verify))
        try:
            now = PlatformClient(http).business_time()
        except httpx.HTTPError as exc:
            raise HarnessError(f"{url}: {tls_failure(exc) or exc}") from None
        yield PlatformHarness(
            url=url,
            ca=JlisCA.open(ca_folder),
            registry=CertificateRegistry(ca_folder),
            keys=KeyPool.generate(2, seed=5, cache_dir=folder / "keys"),
            issued_on=now.date(),
            http=http,
            services=services,
            clock=clock,
            helpdesk_token=helpdesk_token,
            window_token=window_token,
        )
