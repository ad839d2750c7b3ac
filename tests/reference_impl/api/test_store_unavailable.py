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

from mynahil.reference_impl.jlis import KeyPool, lifecycle, random_holder
from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serving
from mynahil.reference_impl.staff import Role
from tests.support import PASSWORD, PIN

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
                pin=PIN, password=PASSWORD, issued_on=date.today(), keys=key_pool,
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

        built.store.dispose()  # every connection, kept ones too, is opened again with the pragma
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


# --- PostgreSQL's disk, full for real: the platform's tables on a tiny tmpfs ------------------


@contextmanager
def tiny_tablespace(admin_url: str, megabytes: int) -> Iterator[str]:
    """A tablespace on a tmpfs of ``megabytes`` mounted for the test (root only, and the
    server on this machine: it writes there). Its name; dropped and unmounted afterwards."""
    import os
    import shutil
    import subprocess
    import tempfile

    from tests.support import IN_CI

    def unavailable(why: str) -> None:
        if IN_CI:  # CI runs as root with its PostgreSQL on this machine
            pytest.fail(f"CI=true, so a real full disk is tested, but: {why}")
        pytest.skip(why)

    if os.geteuid() != 0 or shutil.which("mount") is None:
        unavailable("mounting a tmpfs for a tablespace needs root and mount(8)")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            data = str(connection.execute(text("SHOW data_directory")).scalar_one())
            if not Path(data).is_dir():
                unavailable(f"PostgreSQL's data directory {data} is not on this machine")
            owner = Path(data).stat()
            # Under /tmp, which the server's user can reach (a test's tmp_path is root's only).
            folder = tempfile.mkdtemp(prefix="mynahil-tiny-", dir="/tmp")
            name = f"tiny_{Path(folder).name.rsplit('-', 1)[-1].lower()}"
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o",
                 f"size={megabytes}m,mode=0700,uid={owner.st_uid},gid={owner.st_gid}",
                 "tmpfs", folder],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if mounted.returncode != 0:
                os.rmdir(folder)
                unavailable(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
            try:
                connection.execute(text(f"CREATE TABLESPACE {name} LOCATION '{folder}'"))
                try:
                    yield name
                finally:
                    connection.execute(text(f"DROP TABLESPACE IF EXISTS {name}"))
            finally:
                subprocess.run(["umount", folder], check=True)
                os.rmdir(folder)
    finally:
        admin.dispose()


def _fill(url: str, table: str) -> None:
    """Rows of 1,500 incompressible-enough bytes into ``table`` until the disk is full."""
    from sqlalchemy.exc import OperationalError

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"CREATE TABLE {table} (n int, filler text)"))
            for start in range(0, 1_000_000, 500):
                try:
                    connection.execute(
                        text(
                            f"INSERT INTO {table} SELECT g, repeat(md5(g::text), 47) "
                            "FROM generate_series(:start, :start + 499) AS g"
                        ),
                        {"start": start},
                    )
                except OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) != "53100":  # disk_full
                        raise
                    return
    finally:
        engine.dispose()
    raise AssertionError("the tablespace never filled")


def test_a_full_postgresql_disk_answers_503_and_half_writes_nothing(
    postgres_admin_url: str, tmp_path: Path, key_pool: KeyPool
) -> None:
    """The platform's tables live in a tablespace on a 4 MB tmpfs; filling it makes the next
    reservation fail to extend a table (SQLSTATE 53100): 503 ``storage_full`` with
    Retry-After and a problem document, and nothing of the reservation is written. Freed,
    the very same proof then reserves once."""
    import base64

    from mynahil.card_emulator import emulated_reader
    from tests.conftest import postgres_schema

    with (
        tiny_tablespace(postgres_admin_url, 4) as tablespace,
        postgres_schema(postgres_admin_url) as schema_url,
    ):
        url = make_url(schema_url)
        options = f"{url.query['options']} -cdefault_tablespace={tablespace}"
        store_url = url.update_query_dict({"options": options}).render_as_string(
            hide_password=False
        )
        built = build_platform(store_url, tmp_path / "jlis")
        try:
            state = lifecycle.issue(
                built.jlis.ca, built.jlis.registry, random_holder(random.Random(8)),
                pin=PIN, password=PASSWORD, issued_on=date.today(), keys=key_pool,
            )  # fmt: skip
            card = emulated_reader(state)
            with serving(built.app) as base, httpx.Client(base_url=base, timeout=30) as http:
                challenge = http.post("/v1/mykey/challenges", json={"purpose": "issue"}).json()
                certificate, signature = card.authenticate(
                    PIN, base64.b64decode(challenge["nonce"])
                )
                proof = {
                    "challenge_id": challenge["challenge_id"],
                    "certificate": base64.b64encode(certificate).decode(),
                    "signature": base64.b64encode(signature).decode(),
                }
                audited = sum(1 for _ in built.store.audit_records())
                _fill(store_url, "disk_filler")
                assert_unavailable(http.post("/v1/mykey/ids", json=proof), "storage_full")
                # Nothing half-written: no record, no binding, the chain as it was (and the
                # challenge unspent: the same proof reserves below).
                with built.store.engine.connect() as connection:
                    assert connection.execute(text("SELECT count(*) FROM mykeys")).scalar() == 0
                    assert connection.execute(
                        text("SELECT count(*) FROM certificate_bindings")
                    ).scalar() == 0  # fmt: skip
                count, problem = built.store.verify_audit()
                assert (count, problem) == (audited, None)
                with built.store.engine.connect() as connection:  # room again
                    connection.execute(text("DROP TABLE disk_filler"))
                    connection.commit()
                reserved = http.post("/v1/mykey/ids", json=proof)
                assert reserved.status_code == 201, reserved.text
        finally:
            built.close()
