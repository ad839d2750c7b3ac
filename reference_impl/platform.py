"""The composition root: one place that wires the store, J-LIS, the services and the HTTP app."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mynahil.files import write_atomically
from mynahil.reference_impl.api import create_app
from mynahil.reference_impl.api.app import THREADS
from mynahil.reference_impl.api.calls import ServiceCalls
from mynahil.reference_impl.api.limits import HEAD_SECONDS
from mynahil.reference_impl.audit import RefusalBudget
from mynahil.reference_impl.gateways import HttpAccountCheck, HttpRegistries, LocalRegistries
from mynahil.reference_impl.jlis import CertificateRegistry, JlisCA, JlisServices
from mynahil.reference_impl.jlis.registry import RegistryStore
from mynahil.reference_impl.mykey import MyKeyService
from mynahil.reference_impl.mykey.service import utc_now
from mynahil.reference_impl.points import (
    AccountCheck,
    PointsService,
    Registrations,
    Scheme,
    load_scheme,
)
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.reference_impl.registries import RegistrationBook, RegistryKind, open_registries
from mynahil.reference_impl.staff import StaffDirectory
from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.budget_sql import SqlRefusalBudget
from mynahil.reference_impl.store.clock_sql import shared_clock
from mynahil.reference_impl.store.engine import DEFAULT_BUSY_TIMEOUT, make_engine
from mynahil.reference_impl.store.jlis_sql import SqlRegistry
from mynahil.reference_impl.workers import LISTENING
from mynahil.tls import ThrowawayPki, client_verify

__all__ = [
    "HeadDeadlineProtocol",
    "ReferencePlatform",
    "app_from_environment",
    "build_platform",
    "free_port",
    "remote_registries",
    "serve_process",
    "server_options",
    "serving",
    "shifted_clock",
    "wait_healthy",
]


@dataclass
class ReferencePlatform:
    store: SqlStore
    jlis: JlisServices
    mykey: MyKeyService
    points: PointsService
    signer: Signer  # the platform's own key: signs its calls to operators
    app: FastAPI = field(init=False)
    staff: StaffDirectory
    # The emulated registries beside J-LIS (health-insurance use, public-fund account).
    registries: dict[RegistryKind, RegistrationBook] = field(default_factory=dict)
    # Blocking calls a worker runs in threads at once; None: THREADS on PostgreSQL, FastAPI's
    # default on SQLite (there a call runs on the event loop, and in a thread only to wait for
    # the writer, and requests behind a long write must not hold up the rest).
    threads: int | None = None

    def __post_init__(self) -> None:
        self.app = self.new_app()

    def new_app(self, *, fast_routes: bool = True) -> FastAPI:
        """An HTTP app over this platform's services, as :attr:`app` is; ``fast_routes=False``
        leaves the holders' hot POSTs to FastAPI's routes alone (:mod:`.api.fast`)."""
        store = self.store
        return create_app(
            self.mykey, self.jlis, self.points, public_key_bytes(self.signer.key),
            ready=store.ping, staff=self.staff, registry_books=self.registries,
            service_calls=ServiceCalls(store.not_waiting if store.one_writer else None),
            fast_routes=fast_routes,
            threads=self.threads or (None if store.one_writer else THREADS),
        )  # fmt: skip

    def close(self) -> None:
        self.store.dispose()
        if isinstance(self.jlis.registry, SqlRegistry):
            self.jlis.registry.dispose()


def shifted_clock(as_of: datetime) -> Callable[[], datetime]:
    """A clock that reads ``as_of`` now and advances in real time from there."""
    if as_of.tzinfo is None:
        raise ValueError("as_of needs a time zone")
    offset = as_of - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def _business_clock(store: SqlStore, as_of: datetime) -> Callable[[], datetime]:
    """Under ``as_of``, the database's business clock, which every worker and instance on it
    shares; a database in memory belongs to this process alone."""
    return shifted_clock(as_of) if store.in_memory else shared_clock(store, as_of)


def _refusal_budget(store: SqlStore, scope: str) -> RefusalBudget:
    """The budget of anonymous refusals: the database's, shared by every worker and instance
    (one in memory for a database in memory)."""
    return RefusalBudget() if store.in_memory else SqlRefusalBudget(store.engine, scope)


def platform_key(folder: Path | None) -> Ed25519PrivateKey:
    """The platform's signing key: kept in ``folder`` (created once), or fresh in memory.

    Made by whichever process comes first: instances and workers starting together on a new
    folder all end up with the one key that was linked into place (never one each)."""
    if folder is None:
        return Ed25519PrivateKey.generate()
    path = folder / "platform-signing.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        draft = folder / f".platform-signing.key.{os.getpid()}.{threading.get_ident()}"
        write_atomically(draft, Ed25519PrivateKey.generate().private_bytes_raw())
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # fails if another process was first: its key stands
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return Ed25519PrivateKey.from_private_bytes(path.read_bytes())


def app_from_environment() -> FastAPI:
    """The platform's app as each worker of ``mynahil serve --workers N`` builds it (uvicorn's
    factory): from the ``MYNAHIL_*`` settings the parent process exported."""
    from mynahil.reference_impl.api.logs import configure_logging
    from mynahil.reference_impl.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    # The platform writes its own access records; uvicorn's (off in serve's options) were
    # switched back on by the routing above, and each request was logged twice.
    logging.getLogger("uvicorn.access").propagate = False
    operator_tls = client_verify(settings.ca_file)
    platform = build_platform(
        settings.db_url, settings.jlis_folder, as_of=settings.as_of_moment,
        operator_tls=operator_tls,
        registrations=remote_registries(settings.registries, operator_tls),
        threads=settings.threads,
    )  # fmt: skip
    platform.app.router.on_shutdown.append(platform.close)
    return platform.app


def build_platform(
    db_url: str,
    jlis_folder: Path | None,
    *,
    scheme: Scheme | None = None,
    accounts: AccountCheck | None = None,
    as_of: datetime | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    operator_tls: ssl.SSLContext | bool | None = None,
    registrations: Registrations | None = None,
    clock: Callable[[], datetime] | None = None,
    threads: int | None = None,
) -> ReferencePlatform:
    """The platform on ``db_url`` trusting the J-LIS CA in ``jlis_folder`` (in memory if None).

    The folder is the one ``mynahil card new`` issues from, so its cards are trusted and its
    registry knows their certificates. Campaigns are the bundled ones unless ``scheme`` is
    given; operators' accounts are verified over HTTP unless ``accounts`` is given.
    ``as_of`` starts the platform's clock at another moment (it then runs at real speed):
    the campaigns of 2020-2023 can be replayed today. ``busy_timeout``: seconds a write
    waits for a lock before the request answers 503 ``busy``. ``operator_tls`` verifies
    operators' https verify URLs (default: ``$MYNAHIL_CA_FILE``, else the system's trust store).
    The emulated registries (kept in ``jlis_folder/registries``) are served beside J-LIS, and
    the platform asks them about bonuses unless ``registrations`` names others. ``clock``
    (instead of ``as_of``) is the business clock itself: a harness that moves time.
    ``threads``: blocking calls its app runs in threads at once (default: :data:`.api.app.THREADS`
    on PostgreSQL, FastAPI's on SQLite).
    """
    if as_of is not None and clock is not None:
        raise ValueError("give as_of or clock, not both")
    ca = JlisCA.open(jlis_folder) if jlis_folder else JlisCA.create()
    store = SqlStore.open(db_url, busy_timeout=busy_timeout)
    jlis = JlisServices(ca, jlis_registry(store, jlis_folder, busy_timeout=busy_timeout))
    business = clock or (_business_clock(store, as_of) if as_of else utc_now)
    mykey = MyKeyService(
        store, jlis, clock=business, anonymous_refusals=_refusal_budget(store, "mykey")
    )
    signer = Signer("platform", platform_key(jlis_folder))
    books = open_registries(jlis_folder)
    points = PointsService(
        store,
        mykey,
        scheme or load_scheme(),
        accounts or HttpAccountCheck(signer, verify=_or_default(operator_tls)),
        registrations=registrations or LocalRegistries(books),
        anonymous_refusals=_refusal_budget(store, "points"),
    )
    staff = StaffDirectory(store, clock=mykey.clock)
    return ReferencePlatform(store, jlis, mykey, points, signer, staff, books, threads)


def remote_registries(
    base_url: str | None, verify: ssl.SSLContext | bool | None = None
) -> Registrations | None:
    """The registries at ``base_url`` over HTTP (an https one verified with ``verify``,
    default ``client_verify()``), or None: the ones beside this platform's J-LIS."""
    if base_url is None:
        return None
    return HttpRegistries(base_url, verify=_or_default(verify))


def jlis_registry(
    store: SqlStore, jlis_folder: Path | None, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> RegistryStore:
    """J-LIS's registry for a platform on ``store``: in the database, which every worker and
    instance shares, reading the CA folder's ``registry.json`` (what ``mynahil card new``
    records) for what the database does not hold. A database in memory is one process's
    anyway: the file (or memory) is then the registry, as for the standalone J-LIS."""
    file_registry = CertificateRegistry(jlis_folder)
    if store.in_memory:
        return file_registry
    # J-LIS is another system, with a connection pool of its own: the platform asks J-LIS
    # while its unit of work holds one of the store's connections, and a second checkout
    # from that same pool deadlocks once every pooled connection is held by a request
    # waiting for another (the x10 replay stalled so, the whole pool idle in transaction).
    # Its questions inside the platform's transactions are asked on their connection instead.
    engine = make_engine(store.engine.url, busy_timeout=busy_timeout)
    registry = SqlRegistry(engine, file_registry if jlis_folder is not None else None)
    store.lend_transactions(registry.reading_on)
    return registry


def _or_default(verify: ssl.SSLContext | bool | None) -> ssl.SSLContext | bool:
    return client_verify() if verify is None else verify


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, dropping a connection whose request head (request line
    and headers) is not complete :attr:`head_seconds` after it began, or after the connection
    opened. uvicorn itself waits for a half-sent head forever (a slowloris client holds a
    connection with a byte now and then); the body's deadline is the app's (RequestLimits)."""

    head_seconds: float = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_timer = self.loop.call_later(self.head_seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # keep-alive: the next head has its deadline too
            self._arm_head_deadline()


def server_options(head_seconds: float = HEAD_SECONDS) -> dict[str, Any]:
    """uvicorn settings every platform server uses (``mynahil serve`` and :func:`serving`)."""
    # The class itself where it can be: worker processes get it by reference (pickled).
    protocol = (
        HeadDeadlineProtocol
        if head_seconds == HEAD_SECONDS
        else type("HeadDeadline", (HeadDeadlineProtocol,), {"head_seconds": head_seconds})
    )
    return {"http": protocol, "timeout_keep_alive": 5, "h11_max_incomplete_event_size": 16384}


@contextmanager
def serving(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls: ThrowawayPki | None = None,
    head_seconds: float = HEAD_SECONDS,
) -> Iterator[str]:
    """The app in a background thread (one uvicorn worker) on ``host:port`` (a free loopback
    port by default); its URL (https with ``tls``'s certificate). RuntimeError when it cannot
    listen there."""
    if port == 0:
        port = free_port()
    else:
        with socket.socket() as probe:  # uvicorn would only log the failure and exit
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    config = uvicorn.Config(
        app, host=host, port=port, log_level="error",
        ssl_certfile=tls.cert_file if tls else None, ssl_keyfile=tls.key_file if tls else None,
        **server_options(head_seconds),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"platform-{port}", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the app did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://{reachable_host(host)}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def reachable_host(host: str) -> str:
    """Where this machine reaches a server listening on ``host``: a wildcard is no address."""
    try:
        return "127.0.0.1" if not host or ipaddress.ip_address(host).is_unspecified else host
    except ValueError:  # a name
        return host


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 30,
    *,
    verify: ssl.SSLContext | bool | None = None,
) -> None:
    """Until ``url``/v1/health answers; RuntimeError if ``process`` dies or time runs out.
    An https ``url``'s certificate is checked with ``verify`` (default: ``client_verify()``)."""
    deadline = time.monotonic() + timeout
    trust = _or_default(verify)
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1, verify=trust).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the platform at {url} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the platform at {url} did not answer within {timeout:.0f} s")
        time.sleep(0.05)


def _wait_for_workers(
    log: Path, workers: int, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until every worker logged that it listens (one line each, after its app started)."""
    deadline = time.monotonic() + timeout
    while log.read_bytes().count(LISTENING.encode()) < workers:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"not all {workers} workers started: see {log}")
        time.sleep(0.05)


@contextmanager
def serve_process(
    db_url: str,
    ca_folder: Path,
    *,
    as_of: str | None = None,
    port: int | None = None,
    log: Path | None = None,
    tls: ThrowawayPki | None = None,
    workers: int = 1,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mynahil serve` in a child process, as deployed; its URL and process, once healthy
    (with ``workers`` > 1, which needs PostgreSQL: once every worker started). Its stderr goes
    to ``log`` when given; with ``tls`` it serves https with that certificate (and the health
    check trusts that CA)."""
    port = port or free_port()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mynahil", "serve", "--db", db_url, "--ca", str(ca_folder),
            "--port", str(port)]  # fmt: skip
    if as_of:
        argv += ["--as-of", as_of]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if tls:
        argv += ["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)]
    with ExitStack() as stack:
        if log is None and workers > 1:  # its log tells when every worker has started
            log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "serve.log"
        stderr = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_healthy(
                url, process, timeout=30 * workers,
                verify=client_verify(tls.ca_file) if tls else None,
            )  # fmt: skip
            if workers > 1 and log is not None:
                _wait_for_workers(log, workers, process, timeout=30 * workers)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
