"""The acceptance path: `mynahil serve` on loopback, `mynahil client reserve` against it.

In-process and through pcscd + vpcd; the MyKey ID is printed alone on the last line and the
audit chain of the server's database verifies afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import MYNAHIL, PIN, free_port, mynahil, running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(platform URL, CA folder, database URL) of a real server process."""
    port, ca, db = free_port(), tmp_path / "jlis", f"sqlite:///{tmp_path / 'platform.db'}"
    url = f"http://127.0.0.1:{port}"
    argv = [*MYNAHIL, "serve", "--db", db, "--port", str(port), "--ca", str(ca)]
    with running(argv, f"{url}/v1/health"):
        yield url, ca, db


def reserve_twice(server: tuple[str, Path, str], tmp_path: Path, transport: str) -> None:
    url, ca, db = server
    card = tmp_path / "card.json"
    assert mynahil("card", "new", "--out", str(card), "--ca", str(ca)).returncode == 0
    first = mynahil(
        "client",
        "reserve",
        "--card",
        str(card),
        "--pin",
        PIN,
        "--platform",
        url,
        "--transport",
        transport,
    )
    assert first.returncode == 0, first.stderr
    mykey_id = first.stdout.strip().splitlines()[-1]
    assert len(mykey_id) == 8
    again = mynahil(
        "client",
        "reserve",
        "--card",
        str(card),
        "--pin",
        PIN,
        "--platform",
        url,
        "--transport",
        transport,
    )
    assert again.stdout.strip().splitlines()[-1] == mykey_id
    wrong = mynahil(
        "client",
        "reserve",
        "--card",
        str(card),
        "--pin",
        "0000",
        "--platform",
        url,
        "--transport",
        transport,
    )
    assert wrong.returncode != 0
    assert "2 tries left" in wrong.stderr
    verified = mynahil("audit", "verify", "--db", db)
    assert verified.returncode == 0, verified.stderr
    assert "intact: 2 records" in verified.stdout


def test_reserve_in_process(server: tuple[str, Path, str], tmp_path: Path) -> None:
    reserve_twice(server, tmp_path, "inproc")


@pytest.mark.pcsc
def test_reserve_through_pcscd(
    server: tuple[str, Path, str], tmp_path: Path, pcsc_stack: None
) -> None:
    reserve_twice(server, tmp_path, "vpcd")


def test_refusals_exit_non_zero_with_advice(server: tuple[str, Path, str], tmp_path: Path) -> None:
    url, ca, _db = server
    declined = tmp_path / "declined.json"
    mynahil("card", "new", "--out", str(declined), "--ca", str(ca), "--no-certificate")
    result = mynahil("client", "reserve", "--card", str(declined), "--pin", PIN, "--platform", url)
    assert result.returncode == 1
    assert "no electronic certificate" in result.stderr
    expired = tmp_path / "expired.json"
    mynahil("card", "new", "--out", str(expired), "--ca", str(ca), "--expired")
    result = mynahil("client", "reserve", "--card", str(expired), "--pin", PIN, "--platform", url)
    assert result.returncode == 1
    assert "Renew it at your municipal window" in result.stderr
    down = mynahil(
        "client",
        "reserve",
        "--card",
        str(expired),
        "--pin",
        PIN,
        "--platform",
        "http://127.0.0.1:9",
    )
    assert down.returncode == 1
    assert "Cannot reach the platform" in down.stderr
