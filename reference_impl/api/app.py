"""The platform's HTTP application: MyKey, J-LIS and the point system under /v1."""

from __future__ import annotations

from fastapi import FastAPI

from reference_impl.jlis import JlisServices
from reference_impl.mykey import MyKeyService
from reference_impl.points import PointsService

from . import jlis, mykey, points
from .problems import install_problem_handlers

__all__ = ["API_VERSION", "create_app"]

API_VERSION = "1.0.0"


def create_app(
    service: MyKeyService,
    jlis_services: JlisServices,
    points_service: PointsService | None = None,
    platform_public_key: bytes = b"",
) -> FastAPI:
    """An app around already-wired services (their store and CA are the caller's)."""
    app = FastAPI(
        title="mynahil reference MyKey platform",
        version=API_VERSION,
        description=(
            "The reference implementation of the MyKey platform (MyNa Point). Errors are RFC 9457 "
            "problem details whose `code` is stable."
        ),
    )
    app.state.mykey = service
    app.state.jlis = jlis_services
    install_problem_handlers(app)
    app.include_router(mykey.router)
    app.include_router(jlis.router)
    if points_service is not None:
        app.state.points = points_service
        app.state.platform_public_key = platform_public_key
        app.include_router(points.holder_router)
        app.include_router(points.operator_router)

    @app.get("/v1/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Up, and the platform's business time (it may replay a campaign: serve --as-of)."""
        return {"status": "ok", "time": service.clock().isoformat()}

    return app
