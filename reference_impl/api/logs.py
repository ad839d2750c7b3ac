"""The platform's logs: one JSON object a line (or readable text), each carrying the request's
ID, with one access record per request.

The request ID comes from the caller's ``X-Request-ID`` when it is a plausible ID (so a trace
crosses a load balancer), else a fresh one; it is echoed in the answer's ``X-Request-ID`` and
bound to every record logged while the request runs. Access records hold the method, the path
(never the query string or any header: tokens and codes travel there), the status, the
duration and the client's address.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACCESS_LOGGER", "JsonLines", "LogFormat", "RequestLog", "configure_logging"]

ACCESS_LOGGER = "mynahil.access"
LogFormat = Literal["json", "text"]

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def configure_logging(log_format: LogFormat = "json", level: str = "info") -> None:
    """Route every logger (the platform's, uvicorn's, SQLAlchemy's) through one handler on
    stderr that renders structlog's way: JSON lines, or aligned text for a terminal."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter: logging.Formatter = (
        JsonLines()
        if log_format == "json"
        else structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _without_terminal_colours],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    )
    handler = _StderrOfTheMoment()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # No record shows where it was logged from: skip the frame walk every record paid for
    # (the logging docs' "Optimization" section; structlog's logger class walks further).
    logging._srcfile = None
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _StderrOfTheMoment(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record is written. A harness that swaps stderr
    while logging is set up (pytest's capture, typer's CliRunner) closes its stream later;
    a handler holding that stream would then fail on every record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


# What every LogRecord has; anything else on a record came as ``extra`` and is logged.
_RECORD_FIELDS: Final = frozenset(
    {*vars(logging.makeLogRecord({})), "message", "asctime", "taskName", "color_message"}
)


class JsonLines(logging.Formatter):
    """A record as one JSON object: event, the context bound with structlog.contextvars (the
    request ID), level, logger, UTC timestamp, the record's extra fields, the exception.

    The same object structlog's processor chain rendered, built in one pass: that chain
    copied every record and cost about 6% of an issuance's instructions over HTTP, for the
    access record alone. (uvicorn's ANSI-coloured copy of its message is left out.)
    """

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "event": record.getMessage(),
            **structlog.contextvars.get_contextvars(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return json.dumps(event, default=repr, ensure_ascii=False)


def _without_terminal_colours(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """uvicorn adds an ANSI-coloured copy of its message for terminals; a log keeps one."""
    event.pop("color_message", None)
    return event


class RequestLog:
    """ASGI middleware: a request ID for every request, and its access record."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _PLAUSIBLE_ID.fullmatch(given) else uuid.uuid4().hex
        status = 500  # what the client sees if the app dies before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("ascii")),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                client = scope.get("client")
                self.log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
