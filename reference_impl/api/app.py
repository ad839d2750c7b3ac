"""The platform's HTTP application: MyKey, J-LIS and the point system under /v1."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from mynahil.reference_impl.jlis import JlisServices
from mynahil.reference_impl.mykey import MyKeyService
from mynahil.reference_impl.points import PointsService
from mynahil.reference_impl.registries import RegistrationBook, RegistryKind
from mynahil.reference_impl.staff import StaffDirectory

from . import helpdesk, jlis, mykey, points, registries
from .calls import ServiceCalls
from .limits import RequestLimits
from .logs import RequestLog
from .problems import PROBLEM_RESPONSES, install_problem_handlers, problem

__all__ = ["API_VERSION", "THREADS", "create_app"]

API_VERSION = "1.0.0"

THREADS = 4
"""Blocking calls (nearly all a store transaction each) a worker on PostgreSQL runs in threads at
once; the rest wait their turn on the event loop. FastAPI's default is 40 (kept on SQLite,
where a call waits for the one writer: see ``platform.py``). Every unit of work appends to
the one hash-chained audit log and holds its head row from the append to the commit, so
transactions queue there whatever their number; with 40 threads a worker ran dozens at once,
and the holder of the head competed with all of them for the GIL before it could commit.
Round 1's peak hour replayed at ten times its rate (``benchmarks/bench_replay_peak.py``, two
workers on PostgreSQL) logged appends waiting 300 to 670 ms for the head and a p99 of 3.7 to
4.1 s; with 4 threads a worker, about 0.6 s, and more holders served (the README has the
runs). Password checks have their own lanes (``api/mykey.py``)."""


class Readiness(BaseModel):
    """The platform can serve: its database answered."""

    status: Literal["ready"]
    database: Literal["ok"]


def _threads(count: int) -> Callable[[], None]:
    """A start-up hook that lets the worker's event loop run ``count`` blocking calls at once."""

    def start() -> None:
        # The default limiter belongs to the running loop: set in it, for this worker.
        anyio.to_thread.current_default_thread_limiter().total_tokens = count

    return start


def create_app(
    service: MyKeyService,
    jlis_services: JlisServices,
    points_service: PointsService | None = None,
    platform_public_key: bytes = b"",
    ready: Callable[[], None] | None = None,
    staff: StaffDirectory | None = None,
    registry_books: Mapping[RegistryKind, RegistrationBook] | None = None,
    service_calls: ServiceCalls | None = None,
    *,
    fast_routes: bool = True,
    threads: int | None = THREADS,
) -> FastAPI:
    """An app around already-wired services (their store and CA are the caller's).

    ``ready`` raises when the platform cannot serve (its database does not answer);
    ``/v1/ready`` calls it. Swagger UI (``/docs``) and ReDoc (``/redoc``) are served from the
    package, so they work with no access to a CDN. ``registry_books`` are the emulated
    registries served beside J-LIS (``/v1/registries/…``). ``service_calls`` places the
    holders' hot service calls (:mod:`.calls`; in worker threads when not given).
    ``fast_routes`` serves the holders' hottest POSTs past FastAPI's per-request machinery
    when their bodies are valid (:mod:`.fast`; the same answers, tested against an app
    without them). ``threads``: blocking calls run at once (:data:`THREADS`), from the app's
    start-up; None leaves FastAPI's default.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    app = FastAPIOffline(
        title="mynahil reference MyKey platform",
        version=API_VERSION,
        description=(
            "The reference implementation of the MyKey platform (MyNa Point). Errors are RFC 9457 "
            "problem details whose `code` is stable."
        ),
    )
    if threads is not None:
        app.router.on_startup.append(_threads(threads))
    app.state.mykey = service
    app.state.jlis = jlis_services
    app.state.staff = staff
    if service_calls is not None:
        app.state.service_calls = service_calls
    install_problem_handlers(app)
    app.add_middleware(RequestLimits)  # bodies ≤ 8 MiB and within 30 s, checked while read
    app.add_middleware(RequestLog)  # outermost: every answer gets its ID and access record
    app.include_router(mykey.router)
    if fast_routes:
        # Ahead of every other route: a fast route takes its path's valid bodies and routes
        # anything else again, past itself, to the FastAPI route documented for the path.
        app.router.routes[:0] = mykey.fast_routes(app.router)
    app.include_router(jlis.router)
    app.state.registries = dict(registry_books) if registry_books is not None else None
    if registry_books is not None:
        app.include_router(registries.router)
    app.include_router(helpdesk.router)
    if points_service is not None:
        app.state.points = points_service
        app.state.platform_public_key = platform_public_key
        app.include_router(points.holder_router)
        app.include_router(points.operator_router)

    @app.get("/v1/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Up, and the platform's business time (it may replay a campaign: serve --as-of)."""
        return {"status": "ok", "time": service.clock().isoformat()}

    @app.get(
        "/v1/ready",
        tags=["ops"],
        response_model=Readiness,
        responses={503: PROBLEM_RESPONSES[503]},
    )
    def readiness() -> Response:
        """Ready to serve: the database answers (a load balancer's readiness probe)."""
        try:
            if ready is not None:
                ready()
        except Exception as exc:  # any failure of the check means "not ready"
            response = problem(
                503, "not_ready", f"the database does not answer ({type(exc).__name__})"
            )
            response.headers["Retry-After"] = "5"
            return response
        return JSONResponse(Readiness(status="ready", database="ok").model_dump())

    return app
