"""``mynahil serve``: the reference platform (MyKey, J-LIS, points) over HTTP(S)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ._common import CaFileOption, display_url, err, fail, parse_date, sqlite_path


def serve(
    db: Annotated[
        str | None, typer.Option(help="sqlite:///path or postgresql+psycopg://… [$MYNAHIL_DB]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default 8000) [$MYNAHIL_PORT].")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default 1); more than one needs PostgreSQL [$MYNAHIL_WORKERS]."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Blocking calls (database transactions) each worker runs at once; the rest "
            "wait their turn (default 4 on PostgreSQL, 40 on SQLite) [$MYNAHIL_THREADS]."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default 127.0.0.1) [$MYNAHIL_HOST]."),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(help="J-LIS CA folder (default: $MYNAHIL_HOME/jlis) [$MYNAHIL_JLIS]."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Start the platform's clock at this date (JST noon), e.g. 2020-09-01, "
            "to replay a campaign; it then runs at real speed [$MYNAHIL_AS_OF]."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with this certificate (PEM, chain first); needs --tls-key "
            "[$MYNAHIL_TLS_CERT]."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The private key (PEM) of --tls-cert [$MYNAHIL_TLS_KEY].")
    ] = None,
    ca_file: CaFileOption = None,
    registries: Annotated[
        str | None,
        typer.Option(
            help="Ask the health-insurance and public-fund registries at this base URL "
            "(https verified with --ca-file) instead of the ones beside J-LIS "
            "[$MYNAHIL_REGISTRIES]."
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(help="json (default: one object a line) or text [$MYNAHIL_LOG_FORMAT]."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info (default), warning or error [$MYNAHIL_LOG_LEVEL]."),
    ] = None,
) -> None:
    """Run the reference platform (MyKey, J-LIS, points) over HTTP(S); SQLite by default.

    Every option can come from its MYNAHIL_* environment variable instead. --ca-file here is
    what the platform trusts when it calls operators' https verify URLs and the registries."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from mynahil.reference_impl.api.logs import configure_logging
    from mynahil.reference_impl.platform import build_platform, remote_registries, server_options
    from mynahil.reference_impl.settings import SettingsError, load_settings
    from mynahil.reference_impl.workers import port_problem, run_workers

    from ..tls import TlsConfigError, check_server_files, client_verify

    try:
        settings = load_settings(
            db=db, port=port, workers=workers, threads=threads, host=host, jlis=ca,
            as_of=parse_date(as_of, "--as-of"),
            tls_cert=tls_cert, tls_key=tls_key, ca_file=ca_file, registries=registries,
            log_format=log_format, log_level=log_level,
        )  # fmt: skip
        secure = check_server_files(settings.tls_cert, settings.tls_key)
        operator_tls = client_verify(settings.ca_file)
    except (SettingsError, TlsConfigError) as exc:
        fail(str(exc))
    if (problem := settings.problem_with_workers()) is not None:
        fail(problem)
    if settings.workers > 1 and (busy := port_problem(settings.host, settings.port)) is not None:
        fail(busy)  # checked here: the workers' SO_REUSEPORT sockets would share the port
    url = settings.db_url
    if url.startswith("sqlite:///"):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_format, settings.log_level)
    try:  # with --workers, this checks the database and starts its clock before they start
        platform = build_platform(
            url, settings.jlis_folder, as_of=settings.as_of_moment, operator_tls=operator_tls,
            registrations=remote_registries(settings.registries, operator_tls),
            threads=settings.threads,
        )  # fmt: skip
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot start on {display_url(url)}: {exc}")
    shown = escape(display_url(url))
    scheme = "https" if secure else "http"
    err.print(
        f"platform on {scheme}://{settings.host}:{settings.port} (OpenAPI at /openapi.json, "
        f"docs at /docs), database {shown}, {settings.workers} worker(s)"
        + (f", registries at {escape(settings.registries)}" if settings.registries else "")
    )
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_config": None,
        "access_log": False,  # the platform writes its own access records (request IDs)
        "ssl_certfile": settings.tls_cert if secure else None,
        "ssl_keyfile": settings.tls_key if secure else None,
        **server_options(),
    }  # fmt: skip
    if settings.workers == 1:
        try:
            uvicorn.run(platform.app, **options)
        finally:
            platform.close()
        return
    # Each worker builds its own platform from the same settings, on its own socket.
    platform.close()
    os.environ.update(settings.environment())
    code = run_workers(
        settings.workers,
        {"app": "mynahil.reference_impl.platform:app_from_environment", "factory": True, **options},
    )
    if code:
        raise typer.Exit(code)
