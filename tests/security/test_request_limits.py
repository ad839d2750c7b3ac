"""Bounded requests over a real socket (issue #12, item 8).

A 50 MB body used to cost the server 1.3 GB, and a half-sent request held its connection
forever. Now: a body over 8 MiB is answered 413 (at once when its Content-Length says so,
and as soon as the limit is crossed when it streams), a body that does not arrive in time is
answered 408, and a request head that does not complete in time loses its connection.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.reference_impl.api.limits import MAX_BODY_BYTES, RequestLimits
from mynahil.reference_impl.platform import ReferencePlatform, build_platform, serving
from tests.support import TIMING_SENSITIVE

SHORT = 1.0  # the deadlines these tests run with (the platform's are 10 s and 30 s)

pytestmark = TIMING_SENSITIVE


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferencePlatform]:
    folder: Path = tmp_path_factory.mktemp("limits")
    built = build_platform(f"sqlite:///{folder / 'platform.db'}", None)
    yield built
    built.close()


@pytest.fixture(scope="module")
def address(platform: ReferencePlatform) -> Iterator[tuple[str, int]]:
    # The platform as served, with the body deadline shortened for the test (the size limit
    # left to the platform's own RequestLimits, which the 413 tests exercise).
    app = RequestLimits(platform.app, max_body=1 << 62, body_seconds=SHORT)
    with serving(app, head_seconds=SHORT) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=10)


def _response(sock: socket.socket, deadline: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response (read until the connection closes or the
    declared length is in)."""
    data = b""
    end = time.monotonic() + deadline
    while b"\r\n\r\n" not in data and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (reads whatever it sends meanwhile)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - start
            except ConnectionResetError:
                return time.monotonic() - start
    return None


def test_a_declared_50_mb_body_is_refused_before_it_is_sent(address: tuple[str, int]) -> None:
    with _connect(address) as sock:
        sock.sendall(
            b"POST /v1/jlis/ocsp HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        status, headers, body = _response(sock)
    assert status == 413
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert (problem["code"], problem["status"]) == ("body_too_large", 413)
    assert f"{MAX_BODY_BYTES:,}" in problem["detail"]


def test_a_streamed_body_is_cut_off_at_the_limit_not_buffered(address: tuple[str, int]) -> None:
    """Chunked, no length declared: the server answers 413 once 8 MiB are in, while the
    client still has most of its 50 MB to send."""
    chunk = b"x" * (1 << 20)
    sent = 0
    with _connect(address) as sock:
        sock.sendall(
            b"POST /v1/operators/someone/transactions HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        answered = False
        while sent < 50 * len(chunk):
            ready, _, _ = select.select([sock], [], [], 0)
            if ready:
                answered = True
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(chunk)
        assert answered, "the server read all 50 MB"
        status, _headers, body = _response(sock)
    assert status == 413, body[:200]
    assert json.loads(body)["code"] == "body_too_large"
    assert sent < 20 * len(chunk), sent


def test_a_half_sent_body_is_answered_408_and_dropped(address: tuple[str, int]) -> None:
    with _connect(address) as sock:
        sock.sendall(
            b"POST /v1/mykey/challenges HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"purpose":'
        )
        start = time.monotonic()
        status, headers, body = _response(sock)
        waited = time.monotonic() - start
        assert status == 408, body
        assert json.loads(body)["code"] == "request_timeout"
        assert headers.get("connection") == "close"
        assert SHORT * 0.9 <= waited < SHORT + 5
        assert _closed_within(sock, 5) is not None


def test_a_half_sent_request_head_loses_its_connection(address: tuple[str, int]) -> None:
    with _connect(address) as sock:
        sock.sendall(b"POST /v1/mykey/challenges HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        for _ in range(3):  # a byte now and then does not keep it open
            time.sleep(SHORT / 4)
            sock.sendall(b"a")
        closed = _closed_within(sock, SHORT + 5)
    assert closed is not None, "the server kept a half-sent head open"


def test_a_silent_connection_is_dropped(address: tuple[str, int]) -> None:
    with _connect(address) as sock:
        assert _closed_within(sock, SHORT + 5) is not None


def test_a_normal_request_still_works_on_a_kept_alive_connection(
    address: tuple[str, int],
) -> None:
    body = b'{"purpose":"login"}'
    request = (
        b"POST /v1/mykey/challenges HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with _connect(address) as sock:
        for _ in range(2):
            sock.sendall(request)
            status, _headers, answer = _response(sock)
            assert status == 201, answer
