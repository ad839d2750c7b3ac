"""What the HTTP app adds to an issuance, with no socket: where the time over HTTP goes.

One platform on a SQLite file. In alternating chunks of ``--chunk`` issuances (the order
swapped every pair, as ``bench_interleaved.py`` does) the issuance is timed three ways: the
service called directly (inside the store's ``not_waiting()``, as the app calls it on
SQLite), and the app driven by ASGI calls in this process, with its fast routes
(``api/fast.py``) and built again without them. Inside the app the service call is timed too,
so the app's own share (middleware, routing, validation, serialisation) is told apart from
the service running inside it. No uvicorn and no socket: what ``bench_mykey``'s HTTP figure
adds on top is the server's parsing and system calls and the clients sharing the cores.

Run: ``python benchmarks/bench_app_overhead.py [--chunks N] [--chunk N]``. The last line is
JSON: medians of the chunks, in microseconds per issuance.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_mykey import card_proofs, issuance_bodies, make_cards
from starlette.types import ASGIApp, Message

from mynahil.reference_impl.jlis import KeyPool
from mynahil.reference_impl.platform import ReferencePlatform, build_platform

WAYS = ("direct", "fast_routes", "fastapi_routes")


async def _post(app: ASGIApp, body: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/mykey/ids", "raw_path": b"/v1/mykey/ids",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent = False
    status: list[int] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [201]:
        raise SystemExit(f"issuance over ASGI answered {status}")


async def measure(chunks: int, chunk: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        platform = build_platform(f"sqlite:///{tmp}/bench.db", Path(tmp) / "jlis")
        try:
            return await _measure(platform, chunks, chunk)
        finally:
            platform.close()


async def _measure(platform: ReferencePlatform, chunks: int, chunk: int) -> dict[str, Any]:
    apps: dict[str, ASGIApp] = {
        "fast_routes": platform.app,
        "fastapi_routes": platform.new_app(fast_routes=False),
    }
    warm = 50
    cards = make_cards(platform, 3 * (warm + chunks * chunk), KeyPool.generate(64, seed=5))
    per_way = warm + chunks * chunk
    proofs = card_proofs(platform, cards[:per_way])
    bodies = {
        name: issuance_bodies(card_proofs(platform, cards[(i + 1) * per_way : (i + 2) * per_way]))
        for i, name in enumerate(apps)
    }
    inside = [0.0]
    issue = platform.mykey.issue

    def timed_issue(*args: Any, **kwargs: Any) -> Any:  # the service call, inside the app
        started = time.perf_counter()
        try:
            return issue(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - started

    platform.mykey.issue = timed_issue  # type: ignore[method-assign]
    store = platform.store

    async def run(way: str, i: int) -> tuple[float, float]:
        """Microseconds per issuance of chunk ``i`` (of ``warm`` with i = -1), and of them
        inside the service call."""
        start, end = (0, warm) if i < 0 else (warm + i * chunk, warm + (i + 1) * chunk)
        before, started = inside[0], time.perf_counter()
        if way == "direct":
            for proof in proofs[start:end]:
                with store.not_waiting():
                    timed_issue(*proof)
        else:
            for body in bodies[way][start:end]:
                await _post(apps[way], body)
        count = end - start
        return (time.perf_counter() - started) / count * 1e6, (inside[0] - before) / count * 1e6

    for way in WAYS:
        await run(way, -1)
    gc.collect()
    gc.freeze()
    seen: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    for i in range(chunks):
        order: Callable[[tuple[str, ...]], Any] = reversed if i % 2 else iter
        for way in order(WAYS):
            seen[way].append(await run(way, i))
    figures: dict[str, Any] = {"chunks": chunks, "chunk": chunk}
    for way, runs in seen.items():
        figures[f"{way}_us"] = round(statistics.median(total for total, _ in runs))
        figures[f"{way}_service_us"] = round(statistics.median(inner for _, inner in runs))
    for way in ("fast_routes", "fastapi_routes"):
        figures[f"{way}_app_us"] = figures[f"{way}_us"] - figures[f"{way}_service_us"]
    figures["fast_per_fastapi_routes"] = round(
        figures["fastapi_routes_us"] / figures["fast_routes_us"], 3
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10, help="chunks each way")
    parser.add_argument("--chunk", type=int, default=200, help="issuances per chunk")
    args = parser.parse_args()
    if args.chunks < 1 or args.chunk < 1:
        parser.error("--chunks and --chunk: give positive numbers")
    figures = asyncio.run(measure(args.chunks, args.chunk))
    print(
        f"per issuance: the service alone {figures['direct_us']} us; through the app with its "
        f"fast routes {figures['fast_routes_us']} us (the service inside it "
        f"{figures['fast_routes_service_us']} us), with FastAPI's routes alone "
        f"{figures['fastapi_routes_us']} us (inside {figures['fastapi_routes_service_us']} us)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
