"""`mynahil staff …` and the lost-card hotline against `mynahil serve` on loopback (issue #12
item 1): the token printed once is the only way to suspend a certificate."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography import x509

from mynahil.card_emulator import load_card
from tests.support import MYNAHIL, free_port, mynahil, running


def test_staff_token_from_the_cli_suspends_over_http(store_url: str, tmp_path: Path) -> None:
    ca, card = tmp_path / "jlis", tmp_path / "card.json"
    added = mynahil("staff", "add", "--db", store_url, "--role", "jlis-hotline", "--name", "Desk 1")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("mst_")
    listed = mynahil("staff", "list", "--db", store_url)
    assert "Desk 1" in listed.stdout
    assert token not in listed.stdout
    assert mynahil("card", "new", "--out", str(card), "--ca", str(ca)).returncode == 0
    auth = load_card(card).auth
    assert auth is not None
    serial = x509.load_der_x509_certificate(auth.certificate).serial_number
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [*MYNAHIL, "serve", "--db", store_url, "--port", str(port), "--ca", str(ca)]
    with running(serve, f"{url}/v1/health"), httpx.Client(base_url=url, timeout=30) as http:
        path = f"/v1/jlis/certificates/{serial}/suspension"
        assert http.post(path).status_code == 401
        assert http.post(path, headers={"Authorization": f"Bearer {token}"}).status_code == 204
        assert http.get(f"/v1/jlis/certificates/{serial}").json()["status"] == "revoked"
        assert mynahil("staff", "disable", "1", "--db", store_url).returncode == 0
        again = http.post(path, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401


def test_staff_cli_names_bad_options(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    bad_role = mynahil("staff", "add", "--db", db, "--role", "root", "--name", "x")
    assert bad_role.returncode != 0
    assert "--role" in bad_role.stderr
    bad_name = mynahil("staff", "add", "--db", db, "--role", "helpdesk", "--name", " ")
    assert bad_name.returncode != 0
    assert "--name" in bad_name.stderr
    unknown = mynahil("staff", "disable", "7", "--db", db)
    assert unknown.returncode != 0
    assert "no staff member 7" in unknown.stderr


def test_a_database_that_cannot_be_opened_is_one_line_without_its_password() -> None:
    unreachable = "postgresql+psycopg://staff:hunter2@127.0.0.1:1/none"
    for args in (["staff", "list"], ["points", "check"], ["audit", "verify"]):
        failed = mynahil(*args, "--db", unreachable)
        assert failed.returncode == 2, (args, failed.stderr)
        assert failed.stderr.startswith("error: cannot "), (args, failed.stderr)
        assert "hunter2" not in failed.stderr, (args, failed.stderr)
