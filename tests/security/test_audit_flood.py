"""Anyone could grow the audit log (issue #12, items 6 and 8).

Every refused operator request was written to the hash chain with its full path and query
(about 68 KB each: 200 requests added 13.6 MB to a log that is never pruned). Now a refusal of
a request whose sender is not proven costs a bounded record, and only the first few per source
and minute are written (the rest are counted); a real operator's refusals keep their full
trail, and an operator signing for another's path is audited as refused, not ``ok``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from mynahil.reference_impl.audit import AuditRecord
from mynahil.reference_impl.gateways import LocalAccountCheck
from mynahil.reference_impl.platform import ReferencePlatform, build_platform
from mynahil.reference_impl.points import Operator, PaymentService
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from tests.support import examples

AS_OF = datetime(2020, 9, 10, 3, tzinfo=UTC)
HUGE = 60_000  # httpx refuses URLs over 64 KiB; the attacker sent 68 KB


@dataclass
class Site:
    url: str
    platform: ReferencePlatform
    client: TestClient
    signers: dict[str, Signer]

    def records(self) -> list[AuditRecord]:
        return list(self.platform.store.audit_records())


@pytest.fixture
def site(store_url: str, tmp_path: Path) -> Iterator[Site]:
    platform = build_platform(
        store_url, tmp_path / "jlis", accounts=LocalAccountCheck({}), as_of=AS_OF
    )
    signers = {}
    for name in ("op-a", "op-b"):
        key = Ed25519PrivateKey.generate()
        platform.points.register_operator(
            Operator(name, name, public_key_bytes(key)),
            [PaymentService(f"{name}-pay", name, name)],
        )
        signers[name] = Signer(name, key)
    with TestClient(platform.app) as client:
        yield Site(store_url, platform, client, signers)
    platform.close()


def _size(records: list[AuditRecord]) -> int:
    return sum(len(repr(r.details)) + len(r.action) + len(r.outcome) + 150 for r in records)


def test_200_anonymous_requests_with_huge_paths_add_a_small_bounded_amount(site: Site) -> None:
    before = site.records()
    forger = Signer("op-a", Ed25519PrivateKey.generate())  # a's name, not a's key
    stranger = Signer("nobody", Ed25519PrivateKey.generate())
    for n in range(200):
        target = f"/v1/operators/op-a/applications?after=0&pad={'x' * HUGE}{n}"
        signer = (None, forger, stranger)[n % 3]
        headers = signer.headers("GET", target, b"") if signer else {}
        response = site.client.get(target, headers=headers)
        assert response.status_code == 401, response.text[:200]
    added = site.records()[len(before) :]
    assert 1 <= len(added) <= 10, [(r.action, r.outcome) for r in added]
    assert _size(added) <= 10 * 1500, _size(added)
    for record in added:
        assert record.outcome.startswith("refused:request_") or record.outcome.endswith(
            "operator_unknown"
        )
        assert len(record.details["target"]["text"]) <= 256
        assert record.details["target"]["length"] > HUGE
    # The chain still verifies, as an operator of the platform checks it.
    verify = subprocess.run(
        [sys.executable, "-m", "mynahil", "audit", "verify", "--db", site.url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_real_operators_refusal_keeps_its_full_trail(site: Site) -> None:
    """Item 8: op-b signing for op-a's path is refused and audited as refused, with the
    whole target, however many times it happens."""
    before = len(site.records())
    for n in range(15):
        target = f"/v1/operators/op-a/applications?after=0&pad={'y' * 5000}{n}"
        headers = site.signers["op-b"].headers("GET", target, b"")
        response = site.client.get(target, headers=headers)
        assert (response.status_code, response.json()["code"]) == (403, "operator_mismatch")
    added = site.records()[before:]
    assert [(r.action, r.outcome) for r in added] == [
        ("operator_request", "refused:operator_mismatch")
    ] * 15
    assert added[0].details == {
        "operator": "op-b",
        "for": "op-a",
        "target": f"/v1/operators/op-a/applications?after=0&pad={'y' * 5000}0",
    }


def test_an_operators_own_requests_are_audited_ok(site: Site) -> None:
    target = "/v1/operators/op-a/applications?after=0"
    headers = site.signers["op-a"].headers("GET", target, b"")
    assert site.client.get(target, headers=headers).status_code == 200
    last = site.records()[-1]
    assert (last.action, last.outcome) == ("operator_request", "ok")
    assert last.details == {"operator": "op-a", "target": target}


# --- the budget itself (pure) -----------------------------------------------------------------


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 400)), max_size=400
    )
)
@settings(max_examples=examples(200), deadline=None)
def test_the_budget_bounds_records_and_never_loses_a_count(
    events: list[tuple[str, int]],
) -> None:
    from mynahil.reference_impl.audit import RefusalBudget

    budget = RefusalBudget(per_window=3, summary_every=20, max_sources=3)
    start = datetime(2020, 9, 10, tzinfo=UTC)
    written: dict[str, int] = {}
    accounted: dict[str, int] = {}
    windows: set[tuple[str, int]] = set()
    for source, second in sorted(events, key=lambda e: e[1]):
        now = start + timedelta(seconds=second)
        unrecorded = budget.admit(source, now)
        if unrecorded is not None:
            written[source] = written.get(source, 0) + 1
            accounted[source] = accounted.get(source, 0) + 1 + unrecorded
        windows.add((source, second // 60))
    total = len(events)
    # Every refusal is in a record's count, or still pending in the budget.
    pending = sum(state[2] for state in budget._sources.values())
    assert sum(accounted.values()) + pending == total
    # At most per_window per source-window (plus one summary per summary_every refused).
    assert sum(written.values()) <= 3 * 2 * len(windows) + total // 20 + 1
