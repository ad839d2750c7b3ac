"""Operators registered in the platform's database, with holders who applied with them.

Both operators in the loop (:mod:`.hil`) and the operator replay
(:mod:`mynahil.simulator.loadtest.operators`) start from this set-up: N operators, each with its own
Ed25519 key and payment service, go straight into the store (only the operator path is then
measured, as in benchmarks/bench_points.py), as platform staff do with ``mynahil operator
register``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = ["OperatorIdentity", "set_up_operators"]

APPLIED_AT = datetime(2020, 8, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OperatorIdentity:
    operator_id: str
    service_id: str
    private_key: str  # base64 of the raw Ed25519 private key
    accounts: tuple[str, ...]


def set_up_operators(db_url: str, count: int, holders: int, seed: int) -> list[OperatorIdentity]:
    """Register ``count`` operators with holders who applied with them, in the platform's DB."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mynahil.reference_impl.platform import build_platform
    from mynahil.reference_impl.points import Application, Operator, PaymentService
    from mynahil.reference_impl.points.signing import public_key_bytes
    from mynahil.reference_impl.store import SqlStore

    tag = f"{seed}-{secrets.token_hex(3)}"
    platform = build_platform(db_url, None)
    identities = []
    try:
        store = platform.store
        assert isinstance(store, SqlStore)
        for n in range(count):
            operator_id, service_id = f"replay-{tag}-{n}", f"replay-{tag}-{n}-pay"
            key = Ed25519PrivateKey.generate()
            platform.points.register_operator(
                Operator(operator_id, f"Replay operator {n}", public_key_bytes(key)),
                [PaymentService(service_id, operator_id, f"Replay Pay {n}")],
            )
            accounts = []
            with store.transaction() as uow:
                for h in range(holders):
                    account = f"{n:03d}{h:07d}"
                    person = uow.person(f"replay-{tag}-{n}-{h}", APPLIED_AT)
                    record = uow.create_record(f"R{tag}-{n}-{h}"[:40], APPLIED_AT, person)
                    uow.link_account(service_id, account, record.record_id)
                    uow.add_application(
                        Application(0, "round1", record.record_id, service_id, account,
                                    operator_id, APPLIED_AT, date(2020, 6, 1), 0, person)
                    )  # fmt: skip
                    accounts.append(account)
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            identities.append(
                OperatorIdentity(operator_id, service_id, base64.b64encode(raw).decode(),
                                 tuple(accounts))
            )  # fmt: skip
    finally:
        platform.close()
    return identities
