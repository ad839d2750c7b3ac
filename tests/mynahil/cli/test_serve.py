"""`mynahil serve` as an operator runs it: settings from the environment alone, JSON logs with
request IDs and an access record per request, and settings errors that name the variable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import MYNAHIL, free_port


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([*MYNAHIL, "serve"], stdout=subprocess.DEVNULL, stderr=stderr,
                                env={**os.environ, **env})  # fmt: skip


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve never got ready: {log.read_text()}")


def test_serve_from_the_environment_logs_json_with_request_ids(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {
        "MYNAHIL_DB": f"sqlite:///{tmp_path / 'env.db'}",
        "MYNAHIL_PORT": str(port),
        "MYNAHIL_JLIS": str(tmp_path / "jlis"),
        "MYNAHIL_AS_OF": "2020-09-01",
        "MYNAHIL_LOG_FORMAT": "json",
    }
    process = _serve(env, log)
    try:
        _wait_ready(url, process, log)
        health = httpx.get(f"{url}/v1/health", headers={"X-Request-ID": "trace-42"}, timeout=5)
        assert health.headers["x-request-id"] == "trace-42"
        assert health.json()["time"].startswith("2020-09-01")  # MYNAHIL_AS_OF was read
        fresh = httpx.get(f"{url}/v1/mykey/me", headers={"X-Request-ID": "bad id!"}, timeout=5)
        assert fresh.status_code == 401
        generated = fresh.headers["x-request-id"]
        assert generated != "bad id!"
        assert len(generated) == 32
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "env.db").exists()
    assert (tmp_path / "jlis").is_dir()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "mynahil.access"]
    by_id = {r["request_id"]: r for r in access}
    assert by_id["trace-42"]["path"] == "/v1/health"
    assert by_id["trace-42"]["status"] == 200
    assert by_id["trace-42"]["method"] == "GET"
    assert by_id["trace-42"]["duration_ms"] >= 0
    assert by_id[generated]["status"] == 401
    assert all({"timestamp", "level", "event"} <= set(r) for r in records)
    assert any(r.get("logger", "").startswith("uvicorn") for r in records)  # its logs too


@pytest.mark.parametrize(
    ("env", "named"),
    [({"MYNAHIL_PORT": "70000"}, "MYNAHIL_PORT"),
     ({"MYNAHIL_LOG_FORMAT": "xml"}, "MYNAHIL_LOG_FORMAT"),
     ({"MYNAHIL_WORKERS": "0"}, "MYNAHIL_WORKERS"),
     ({"MYNAHIL_THREADS": "0"}, "MYNAHIL_THREADS"),
     ({"MYNAHIL_TLS_CERT": "/tmp/cert.pem"}, "--tls-key is needed"),
     ({"MYNAHIL_REGISTRIES": "registries.example:8000"}, "MYNAHIL_REGISTRIES")],
)  # fmt: skip
def test_a_bad_setting_is_named_with_its_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    answer = subprocess.run(
        [*MYNAHIL, "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env},
    )  # fmt: skip
    assert answer.returncode == 2, answer.stderr
    assert named in answer.stderr
    assert "Traceback" not in answer.stderr


@pytest.mark.parametrize("given", [["--workers", "2"], []], ids=["option", "environment"])
def test_more_than_one_worker_on_sqlite_is_refused_in_one_line(
    tmp_path: Path, given: list[str]
) -> None:
    answer = subprocess.run(
        [*MYNAHIL, "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", *given],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MYNAHIL_WORKERS": "2"},
    )  # fmt: skip
    assert answer.returncode == 2, answer.stderr
    said = answer.stderr.strip()
    assert "\n" not in said
    assert "--workers 2 needs PostgreSQL" in said
    assert not (tmp_path / "x.db").exists()  # refused before it touched anything


def test_workers_refuse_a_port_another_server_listens_on(tmp_path: Path) -> None:
    """Workers bind with SO_REUSEPORT, which would quietly share the port with any other
    server of this user there: serve says the port is taken before it starts anything."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        answer = subprocess.run(
            [*MYNAHIL, "serve", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/never",
             "--ca", str(tmp_path / "jlis"), "--workers", "2", "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert answer.returncode == 2, answer.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in answer.stderr
    assert "Traceback" not in answer.stderr
    assert not (tmp_path / "jlis").exists()  # refused before it touched anything
