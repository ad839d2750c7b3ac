"""What one request may cost the platform (issue #12, item 8): bounded bodies and bounded time.

- A body is at most :data:`MAX_BODY_BYTES` (8 MiB: a full batch of 5,000 reports with every
  field at its longest is about 4 MB). A larger declared ``Content-Length`` is answered 413
  before a byte of the body is read; a body that turns out larger while it streams in is cut
  off at the limit and answered 413 — never buffered whole (a 50 MB body used to cost 1.3 GB).
- A body must arrive within :data:`BODY_SECONDS` of the first read: a half-sent body (a
  slowloris client) is answered 408 and the connection closed. The request head has its own
  deadline in the server (:data:`HEAD_SECONDS`; see ``mynahil.reference_impl.platform``), since an
  ASGI app only sees a request once its head is complete.

Both answers are RFC 9457 problems (``body_too_large``, ``request_timeout``).
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import problem

__all__ = ["BODY_SECONDS", "HEAD_SECONDS", "MAX_BODY_BYTES", "RequestLimits"]

MAX_BODY_BYTES: Final = 8 * 1024 * 1024
BODY_SECONDS: Final = 30.0
HEAD_SECONDS: Final = 10.0


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit:,} bytes")


class RequestLimits:
    """ASGI middleware: the body size limit and the body deadline, enforced while reading."""

    def __init__(
        self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES, body_seconds: float = BODY_SECONDS
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            response = problem(413, "body_too_large", str(_too_large(self.max_body).detail))
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0
        complete = False
        deadline: float | None = None

        async def limited() -> Message:
            nonlocal received, complete, deadline
            if complete:  # the body is in: later reads wait for a disconnect, untimed
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.body_seconds
            try:
                # timeout_at arms one timer on this task; wait_for made a task for every read
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.body_seconds:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _too_large(self.max_body)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited, send)
