"""A busy or full store answers 503 with Retry-After and a problem document, never 500, and
leaves nothing half-written (issue #12 item 5). Real contention: another connection holds the
lock the platform needs; a real server on loopback."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from reference_impl.jlis import KeyPool, lifecycle, random_holder
from reference_impl.platform import ReferencePlatform, build_platform, serving
from reference_impl.staff import Role

BUSY_TIMEOUT = 0.3


@pytest.fixture
def platform(store_url: str, tmp_path: Path) -> Iterator[ReferencePlatform]:
    built = build_platform(store_url, tmp_path / "jlis", busy_timeout=BUSY_TIMEOUT)
    yield built
    built.close()


@contextmanager
def lock_held(store_url: str) -> Iterator[None]:
    """Another client holds what a new challenge needs: SQLite's write lock, or PostgreSQL's
    lock on the challenges table."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE challenges IN ACCESS EXCLUSIVE MODE"))
            yield
            holder.rollback()
    finally:
        engine.dispose()


def assert_unavailable(answer: httpx.Response, code: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["retry-after"]) >= 1
    body = answer.json()
    assert (body["status"], body["code"]) == (503, code)


def test_a_busy_store_answers_503_with_retry_after(
    platform: ReferencePlatform, store_url: str
) -> None:
    with serving(platform.app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with lock_held(store_url):
            assert_unavailable(http.post("/v1/mykey/challenges", json={"purpose": "issue"}), "busy")
        assert http.post("/v1/mykey/challenges", json={"purpose": "issue"}).status_code == 201


def test_a_full_sqlite_disk_answers_503_and_half_writes_nothing(
    tmp_path: Path, key_pool: KeyPool
) -> None:
    built = build_platform(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "jlis")
    try:
        serials = []
        for seed in (5, 6):
            state = lifecycle.issue(
                built.jlis.ca, built.jlis.registry, random_holder(random.Random(seed)),
                pin="1234", password="ABC123", issued_on=date.today(), keys=key_pool,
            )  # fmt: skip
            assert state.auth is not None
            serials.append(x509.load_der_x509_certificate(state.auth.certificate).serial_number)
        serial, filler = serials
        _member, token = built.staff.add("Hotline desk 1", Role.JLIS_HOTLINE)
        audited = sum(1 for _ in built.store.audit_records())

        @event.listens_for(built.store.engine, "connect")
        def _small_disk(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count={pages + 8}")

        built.store.engine.dispose()
        with serving(built.app) as url, httpx.Client(base_url=url, timeout=30) as http:
            hotline = {"Authorization": f"Bearer {token}"}
            for _ in range(2000):  # fill the "disk" with audit records of suspensions
                answer = http.post(f"/v1/jlis/certificates/{filler}/suspension", headers=hotline)
                if answer.status_code != 204:
                    break
            assert_unavailable(answer, "storage_full")
            audited = sum(1 for _ in built.store.audit_records())
            suspended = http.post(
                f"/v1/jlis/certificates/{serial}/suspension",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert_unavailable(suspended, "storage_full")
            # nothing half-written: not revoked, and the audit chain is whole and unchanged
            assert http.get(f"/v1/jlis/certificates/{serial}").json()["status"] == "good"
        count, problem = built.store.verify_audit()
        assert problem is None
        assert count == audited
    finally:
        built.close()
