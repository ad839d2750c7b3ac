"""The point system from the command line, as an operator and a holder would use it: keys,
registration, `serve --as-of`, the sample operator, `client apply`, settlement, reconciliation
and the ledger check — each a real process on loopback."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import MYNAHIL, PIN, free_port, mynahil, running


def test_operator_and_holder_round_trip(tmp_path: Path) -> None:
    db, ca = f"sqlite:///{tmp_path / 'platform.db'}", tmp_path / "jlis"
    key = tmp_path / "operator.pem"
    made = mynahil("operator", "keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip().splitlines()[-1]
    assert len(base64.b64decode(public)) == 32
    op_port, platform_port = free_port(), free_port()
    op_url, platform_url = f"http://127.0.0.1:{op_port}", f"http://127.0.0.1:{platform_port}"
    registered = mynahil(
        "operator", "register", "--db", db, "--operator", "qr-inc", "--name", "QR Inc.",
        "--public-key", public, "--service", "qr-pay:QR Pay",
        "--verify-url", f"{op_url}/v1/verify-account",
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    serve = [*MYNAHIL, "serve", "--db", db, "--port", str(platform_port), "--ca", str(ca),
             "--as-of", "2020-09-01"]  # fmt: skip
    with running(serve, f"{platform_url}/v1/health"):
        sample = [*MYNAHIL, "operator", "run", "--platform", platform_url, "--operator", "qr-inc",
                  "--key", str(key), "--service", "qr-pay", "--port", str(op_port)]  # fmt: skip
        with running(sample, f"{op_url}/docs"):
            card = tmp_path / "card.json"
            issued = mynahil("card", "new", "--out", str(card), "--ca", str(ca),
                             "--issued-on", "2020-07-01")  # fmt: skip
            assert issued.returncode == 0, issued.stderr
            reserved = mynahil("client", "reserve", "--card", str(card), "--pin", PIN,
                               "--platform", platform_url)  # fmt: skip
            assert reserved.returncode == 0, reserved.stderr
            account = httpx.post(f"{op_url}/v1/accounts", json={"holder_name": "Hanako"}).json()
            apply = ["client", "apply", "--card", str(card), "--pin", PIN, "--platform",
                     platform_url, "--service", "qr-pay",
                     "--account", account["account_id"]]  # fmt: skip
            wrong = mynahil(*apply, "--security-code", "nope")
            assert wrong.returncode == 1
            assert "security code" in wrong.stderr
            applied = mynahil(*apply, "--security-code", account["security_code"])
            assert applied.returncode == 0, applied.stderr
            assert "round1" in applied.stdout
            charge = httpx.post(
                f"{op_url}/v1/till", json={"account_id": account["account_id"], "amount": 30000}
            ).json()
            assert (charge["outcome"], charge["points"]) == ("capped", 5000)

            month = "2020-09"
            common = ["--platform", platform_url, "--operator", "qr-inc", "--key", str(key),
                      "--month", month]  # fmt: skip
            settled = mynahil("operator", "settlement", *common, "--format", "json")
            assert settled.returncode == 0, settled.stderr
            assert json.loads(settled.stdout)["net"] == 5000
            books = tmp_path / "books.csv"
            books.write_text(
                f"transaction_id,kind,amount,points\n{charge['transaction_id']},charge,30000,5000\n"
            )
            agreed = mynahil("operator", "reconcile", *common, "--records", str(books))
            assert agreed.returncode == 0, agreed.stdout + agreed.stderr
            books.write_text(
                "transaction_id,kind,amount,points\n"
                f"{charge['transaction_id']},charge,30000,4000\nghost,charge,100,25\n"
            )
            differ = mynahil("operator", "reconcile", *common, "--records", str(books))
            assert differ.returncode == 1
            assert "missing_at_platform" in differ.stdout
            assert "points" in differ.stdout
    checked = mynahil("points", "check", "--db", db)
    assert checked.returncode == 0, checked.stderr
    written = mynahil("points", "settle", "--db", db, "--operator", "qr-inc", "--month", "2020-09",
                      "--out", str(tmp_path / "out"))  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "out" / "settlement-qr-inc-2020-09.csv").read_text().count("\n") == 2
    assert mynahil("audit", "verify", "--db", db).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["operator", "register", "--operator", "x", "--name", "X", "--public-key", "!!",
          "--service", "s"], "--public-key is not base64"),
        (["operator", "register", "--operator", "x", "--name", "X", "--public-key", "AAAA",
          "--service", "s"], "32 bytes"),
        (["operator", "settlement", "--platform", "http://127.0.0.1:9", "--operator", "x",
          "--key", "/nonexistent.pem", "--month", "2020-09"], "--key /nonexistent.pem"),
        (["serve", "--as-of", "yesterday"], "--as-of 'yesterday' is not a date"),
    ],
)  # fmt: skip
def test_bad_input_is_named(args: list[str], message: str, tmp_path: Path) -> None:
    result = mynahil(*args)
    assert result.returncode == 2
    assert message in result.stderr


# What a staff command loaded, printed as it exits (runpy: `python -m mynahil` in this process).
_LOADED = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('LOADED', sorted(m for m in ('mynahil.reference_impl.platform',"
    " 'fastapi') if m in sys.modules), file=sys.stderr))\n"
    "sys.argv = ['mynahil', *sys.argv[1:]]\n"
    "runpy.run_module('mynahil', run_name='__main__')\n"
)


def test_the_staff_commands_open_the_database_alone(tmp_path: Path) -> None:
    """`operator register`, `points settle` and `points check` read and write the books: they
    need neither J-LIS's CA keys nor the platform's HTTP app (issue 16)."""
    db = f"sqlite:///{tmp_path / 'platform.db'}"
    public = base64.b64encode(bytes(32)).decode()
    commands = [
        ["operator", "register", "--db", db, "--operator", "qr-inc", "--name", "QR Inc.",
         "--public-key", public, "--service", "qr-pay"],
        ["points", "settle", "--db", db, "--operator", "qr-inc", "--month", "2020-09",
         "--out", str(tmp_path / "out")],
        ["points", "check", "--db", db],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-c", _LOADED, *command],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "LOADED []" in done.stderr, (command, done.stderr)
