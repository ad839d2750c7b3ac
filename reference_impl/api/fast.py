"""The holders' hottest POSTs without FastAPI's per-request machinery, where it adds nothing.

For each request FastAPI matches the included routers, solves the endpoint's dependencies,
validates the body field by field, then validates and serialises the answer through the
response model: in process ~150 us of the ~450 us the app adds to an issuance (which itself
takes ~450). A fast route takes a request whose body is JSON that its model validates, in one
pydantic call, and answers with the endpoint's own code (:func:`FastPost`'s ``serve``, the
function the FastAPI endpoint calls too). Every other request (not JSON, invalid, too large
for the model, …) goes to the FastAPI route as it came, so refusals, their wording and the
OpenAPI document stay FastAPI's; the middleware (request ID, access record, limits) and the
exception handlers are the app's either way, since the fast route sits among its routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FastPost", "FastRoute"]

_DECLINED = "mynahil.fast_route_declined"
"""Scope key: the fast route passed this request on; routing again, it does not match."""

_Body = TypeVar("_Body", bound=BaseModel)

Serve = Callable[[Request, _Body], Awaitable[tuple[int, BaseModel]]]
"""The endpoint's own code: the request and its validated body to (status, answer)."""


class FastPost(Generic[_Body]):
    """An ASGI app for one POST route: ``serve`` for a body ``model`` validates, else the
    app's ``router`` routes the request again (to the FastAPI route) with the body replayed."""

    def __init__(self, model: type[_Body], serve: Serve[_Body], router: ASGIApp) -> None:
        self.model = model
        self.serve = serve
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        body = self._validated(request, raw)
        if body is None:
            scope[_DECLINED] = True
            await self.router(scope, _replaying(raw, receive), send)
            return
        status, answer = await self.serve(request, body)
        response = Response(answer.model_dump_json(), status, media_type="application/json")
        await response(scope, receive, send)

    def _validated(self, request: Request, raw: bytes) -> _Body | None:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            return None
        try:
            return self.model.model_validate_json(raw)
        except ValidationError:
            return None


def _replaying(raw: bytes, receive: Receive) -> Receive:
    """The request's body once more, then whatever the client sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


class FastRoute(Route):
    """The POST at ``path`` served by :class:`FastPost`; placed before the FastAPI route for
    the same path, which takes what it declines."""

    def __init__(self, path: str, model: type[_Body], serve: Serve[_Body], router: ASGIApp) -> None:
        super().__init__(path, FastPost(model, serve, router), methods=["POST"])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_DECLINED):
            return Match.NONE, {}
        return super().matches(scope)
