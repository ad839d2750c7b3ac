"""The harness a MyKey platform is certified in: the platform (the reference one on loopback,
or a deployment at a URL) and holders whose cards its J-LIS CA issued.

The reference platform also gets two sample payment services, so the point rules a holder
meets (one payment service, chosen for good) can be checked; a deployment at a URL has no
payment service the harness controls, and those tests skip there."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_emulator import CardState, EmulatedCard
from mynahil.card import MyNumberCard
from mynahil.transports.inproc import InProcessTransport
from reference_impl.jlis import JlisCA, KeyPool, lifecycle, random_holder
from reference_impl.jlis.registry import CertificateRegistry
from reference_impl.operator import OperatorBooks, create_operator_app
from reference_impl.platform import ReferencePlatform, build_platform, serving
from reference_impl.points import Operator, PaymentService
from reference_impl.points.signing import public_key_bytes

from .operator_harness import CAMPAIGN_ID, conformance_scheme
from .platform_defects import make_defective
from .targets import EMULATED_PASSWORD

__all__ = ["PIN", "PaymentAccount", "PlatformHarness", "platform_harness"]

PIN = "1234"


@dataclass(frozen=True, slots=True)
class PaymentAccount:
    """An account a holder may apply with: (payment service ID, security code) at a service."""

    service_id: str
    account_id: str
    security_code: str


@dataclass
class PlatformHarness:
    url: str
    ca: JlisCA
    registry: CertificateRegistry
    keys: KeyPool
    issued_on: date
    http: httpx.Client
    services: dict[str, OperatorBooks] = field(default_factory=dict)  # none at a URL
    campaign_id: str = CAMPAIGN_ID
    _rng: random.Random = field(default_factory=lambda: random.Random(5))

    def open_account(self, service_id: str) -> PaymentAccount:
        books = self.services[service_id]
        account = books.open_account("Conformance Holder")
        return PaymentAccount(service_id, account.account_id, account.security_code)

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
def platform_harness(
    url: str | None, ca_folder: Path | None, defect: str | None = None
) -> Iterator[PlatformHarness]:
    """``url`` None: the reference platform, served here; else the deployment at ``url``,
    whose CA folder ``ca_folder`` must be readable (cards are issued from it)."""
    folder = Path(tempfile.mkdtemp(prefix="mynahil-platform-suite-"))
    services: dict[str, OperatorBooks] = {}
    with ExitStack() as stack:
        if url is None:
            ca_folder = folder / "jlis"
            platform = build_platform(
                f"sqlite:///{folder / 'p.db'}", ca_folder,
                scheme=conformance_scheme(datetime.now(UTC).date()),
            )  # fmt: skip
            stack.callback(platform.close)
            if defect:
                make_defective(platform, defect)
            url = stack.enter_context(serving(platform.app))
            for name in ("pay-a", "pay-b"):
                services[name] = _sample_service(stack, platform, name)
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
            services=services,
        )


def _sample_service(
    stack: ExitStack, platform: ReferencePlatform, service_id: str
) -> OperatorBooks:
    """A sample operator running ``service_id``, registered with the platform (verify only:
    these tests apply, they never report charges)."""
    books = OperatorBooks(f"{service_id}-inc", service_id)
    app = create_operator_app(books, public_key_bytes(platform.signer.key))
    url = stack.enter_context(serving(app))
    never_reports = public_key_bytes(Ed25519PrivateKey.generate())
    platform.points.register_operator(
        Operator(books.operator_id, f"{service_id} Inc.", never_reports,
                 verify_url=f"{url}/v1/verify-account"),
        [PaymentService(service_id, books.operator_id, service_id)],
    )  # fmt: skip
    return books
