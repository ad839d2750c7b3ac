"""The sample payment service served beside a reference platform, as the demo, the soak, the
harnesses and the tests assemble it.

The operator has its books, its own signing key, its till's signed client to the platform and
its app on a loopback port, and is registered with the platform (its public key and the URL the
platform verifies accounts at) before anyone uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.reference_impl.operator import OperatorBooks, OperatorClient, create_operator_app
from mynahil.reference_impl.platform import ReferencePlatform, serving
from mynahil.reference_impl.points import Operator, PaymentService
from mynahil.reference_impl.points.signing import Signer, public_key_bytes

__all__ = ["SampleOperator", "sample_operator"]


@dataclass(frozen=True)
class SampleOperator:
    """A sample operator, served: ``client`` is its till's signed client to the platform,
    ``url`` where its own app answers (the platform's verify calls, the till)."""

    books: OperatorBooks
    key: Ed25519PrivateKey
    client: OperatorClient
    url: str

    @property
    def signer(self) -> Signer:
        """Signs as this operator: another client (one per worker) signs with it too."""
        return Signer(self.books.operator_id, self.key)


@contextmanager
def sample_operator(
    platform: ReferencePlatform,
    platform_url: str,
    *,
    operator_id: str,
    operator_name: str,
    service_id: str,
    service_name: str,
    clock: Callable[[], datetime] | None = None,
    resend_every_s: float | None = 5.0,
) -> Iterator[SampleOperator]:
    """A sample operator with a fresh key, serving ``service_id``, registered with ``platform``
    (reached at ``platform_url``); ``clock`` stamps its till's charges (default: the wall
    clock; the platform's business time when it replays a campaign); pending reports are
    sent again every ``resend_every_s`` (see :func:`create_operator_app`)."""
    key = Ed25519PrivateKey.generate()
    books = OperatorBooks(operator_id, service_id)
    client = OperatorClient.connect(platform_url, Signer(operator_id, key))
    try:
        app = create_operator_app(
            books, public_key_bytes(platform.signer.key), client, clock,
            resend_every_s=resend_every_s,
        )  # fmt: skip
        with serving(app) as url:
            platform.points.register_operator(
                Operator(operator_id, operator_name, public_key_bytes(key),
                         verify_url=f"{url}/v1/verify-account"),
                [PaymentService(service_id, operator_id, service_name)],
            )  # fmt: skip
            yield SampleOperator(books, key, client, url)
    finally:
        client.http.close()
