"""Seed 004: traffic to the platform is encrypted. `mynahil serve --tls-cert/--tls-key`, and
every client side (holder, operator, the platform's own calls to operators, the conformance
harness, the load test) verifies the server against a CA file; a certificate from any other
CA is refused with one line naming the problem. Certificates are made here, per test."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from mynahil.conformance.cli import run_target
from mynahil.reference_impl.gateways import HttpAccountCheck
from mynahil.reference_impl.operator import OperatorBooks, create_operator_app
from mynahil.reference_impl.platform import serving
from mynahil.reference_impl.points import Operator, OperatorUnreachable
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.tls import (
    CA_FILE_ENV,
    ThrowawayPki,
    TlsConfigError,
    check_server_files,
    client_verify,
    make_throwaway_pki,
)
from tests.support import MYNAHIL, PIN, free_port, mynahil, running


@dataclass(frozen=True)
class Platform:
    url: str
    ca: Path  # the J-LIS CA folder
    db: str
    tls: ThrowawayPki


@pytest.fixture
def tls_platform(tmp_path: Path) -> Iterator[Platform]:
    """`mynahil serve` over TLS, with a certificate from a CA made for this test."""
    pki = make_throwaway_pki(tmp_path / "tls")
    port, ca, db = free_port(), tmp_path / "jlis", f"sqlite:///{tmp_path / 'platform.db'}"
    url = f"https://127.0.0.1:{port}"
    argv = [*MYNAHIL, "serve", "--db", db, "--port", str(port), "--ca", str(ca),
            "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)]  # fmt: skip
    with running(argv, f"{url}/v1/health", verify=client_verify(pki.ca_file)):
        yield Platform(url, ca, db, pki)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


def test_a_holder_reserves_over_tls_trusting_the_ca_file(
    tls_platform: Platform, tmp_path: Path
) -> None:
    card = tmp_path / "card.json"
    assert mynahil("card", "new", "--out", str(card), "--ca", str(tls_platform.ca)).returncode == 0
    base = ["client", "reserve", "--card", str(card), "--pin", PIN,
            "--platform", tls_platform.url]  # fmt: skip
    first = mynahil(*base, "--ca-file", str(tls_platform.tls.ca_file))
    assert first.returncode == 0, first.stderr
    mykey_id = first.stdout.strip().splitlines()[-1]
    # The same trust from the environment instead of the option.
    env = {**os.environ, CA_FILE_ENV: str(tls_platform.tls.ca_file)}
    again = mynahil(*base, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == mykey_id
    assert mynahil("audit", "verify", "--db", tls_platform.db).returncode == 0


def test_a_client_refuses_a_certificate_not_from_its_ca_file(
    tls_platform: Platform, tmp_path: Path
) -> None:
    other = make_throwaway_pki(tmp_path / "other")  # same hosts, another CA
    card = tmp_path / "card.json"
    assert mynahil("card", "new", "--out", str(card), "--ca", str(tls_platform.ca)).returncode == 0
    base = ["client", "reserve", "--card", str(card), "--platform", tls_platform.url]
    with_pin = {**os.environ, "MYNAHIL_PIN": PIN}  # not on argv: that adds a warning line
    refused = mynahil(*base, "--ca-file", str(other.ca_file), env=with_pin)
    assert refused.returncode == 1
    _one_line_error(refused, "did not verify", "--ca-file", "[platform_untrusted]")
    # Without a CA file the system's store does not know the test CA either.
    env = {k: v for k, v in with_pin.items() if k != CA_FILE_ENV}
    refused = mynahil(*base, env=env)
    assert refused.returncode == 1
    _one_line_error(refused, "did not verify")
    # The card was never asked: its PIN counter is untouched, nothing reached the audit log.
    verified = mynahil("audit", "verify", "--db", tls_platform.db)
    assert "intact: 0 records" in verified.stdout
    # A CA file that is not there is named before anything is sent.
    missing = mynahil(*base, "--ca-file", str(tmp_path / "nope.pem"), env=with_pin)
    assert missing.returncode == 2
    _one_line_error(missing, "--ca-file", "no such file")


def test_an_https_url_to_a_plain_http_server_says_so(tmp_path: Path) -> None:
    port, ca = free_port(), tmp_path / "jlis"
    argv = [*MYNAHIL, "serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port),
            "--ca", str(ca)]  # fmt: skip
    card = tmp_path / "card.json"
    with running(argv, f"http://127.0.0.1:{port}/v1/health"):
        assert mynahil("card", "new", "--out", str(card), "--ca", str(ca)).returncode == 0
        result = mynahil("client", "reserve", "--card", str(card),
                         "--platform", f"https://127.0.0.1:{port}",
                         env={**os.environ, "MYNAHIL_PIN": PIN})  # fmt: skip
    assert result.returncode == 1
    _one_line_error(result, "TLS handshake failed", "plain HTTP")


def test_serve_names_bad_tls_options(tmp_path: Path) -> None:
    pki = make_throwaway_pki(tmp_path / "tls")
    cases = [
        (["--tls-cert", str(pki.cert_file)], "--tls-key is needed"),
        (["--tls-key", str(pki.key_file)], "--tls-cert is needed"),
        (["--tls-cert", str(tmp_path / "x.pem"), "--tls-key", str(pki.key_file)], "--tls-cert"),
        (["--tls-cert", str(pki.ca_file), "--tls-key", str(pki.key_file)], "--tls-key"),
        (["--ca-file", str(tmp_path / "x.pem")], "--ca-file"),
    ]
    for args, option in cases:
        result = mynahil("serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", *args)
        assert result.returncode == 2, (args, result.stderr)
        _one_line_error(result, option)


def test_tls_files_are_checked_before_use(tmp_path: Path) -> None:
    pki = make_throwaway_pki(tmp_path / "tls")
    assert check_server_files(None, None) is False
    assert check_server_files(pki.cert_file, pki.key_file) is True
    other = make_throwaway_pki(tmp_path / "other")
    with pytest.raises(TlsConfigError, match=r"--tls-cert .* / --tls-key"):
        check_server_files(pki.cert_file, other.key_file)  # a key of another certificate
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="not a PEM CA certificate"):
        client_verify(junk)
    assert client_verify(None) is True or CA_FILE_ENV in os.environ
    assert isinstance(client_verify(pki.ca_file), ssl.SSLContext)


# --- the operator's side, and the platform's calls to operators ------------------------------


@pytest.mark.slow
def test_operators_and_the_platform_verify_each_other_over_tls(tmp_path: Path) -> None:
    """The whole point path on https: the platform (CA 1) verifies the operator's account at its
    https verify URL (CA 2); the sample operator reports a charge to the https platform;
    `operator settlement` reads it back; a wrong CA file is one line, not a traceback."""
    platform_pki = make_throwaway_pki(tmp_path / "platform-tls")
    operator_pki = make_throwaway_pki(tmp_path / "operator-tls")
    db, ca = f"sqlite:///{tmp_path / 'platform.db'}", tmp_path / "jlis"
    key = tmp_path / "operator.pem"
    public = mynahil("operator", "keygen", "--out", str(key)).stdout.strip().splitlines()[-1]
    op_port, platform_port = free_port(), free_port()
    op_url, platform_url = f"https://127.0.0.1:{op_port}", f"https://127.0.0.1:{platform_port}"
    registered = mynahil(
        "operator", "register", "--db", db, "--operator", "qr-inc", "--name", "QR Inc.",
        "--public-key", public, "--service", "qr-pay:QR Pay",
        "--verify-url", f"{op_url}/v1/verify-account",
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    serve = [*MYNAHIL, "serve", "--db", db, "--port", str(platform_port), "--ca", str(ca),
             "--as-of", "2020-09-01", "--tls-cert", str(platform_pki.cert_file),
             "--tls-key", str(platform_pki.key_file),
             "--ca-file", str(operator_pki.ca_file)]  # fmt: skip
    trust_platform = client_verify(platform_pki.ca_file)
    trust_operator = client_verify(operator_pki.ca_file)
    with running(serve, f"{platform_url}/v1/health", verify=trust_platform):
        sample = [*MYNAHIL, "operator", "run", "--platform", platform_url, "--operator", "qr-inc",
                  "--key", str(key), "--service", "qr-pay", "--port", str(op_port),
                  "--ca-file", str(platform_pki.ca_file),
                  "--tls-cert", str(operator_pki.cert_file),
                  "--tls-key", str(operator_pki.key_file)]  # fmt: skip
        with running(sample, f"{op_url}/docs", verify=trust_operator):
            card = tmp_path / "card.json"
            mynahil("card", "new", "--out", str(card), "--ca", str(ca), "--issued-on",
                    "2020-07-01")  # fmt: skip
            trusting = ["--platform", platform_url, "--ca-file", str(platform_pki.ca_file)]
            reserved = mynahil("client", "reserve", "--card", str(card), "--pin", PIN,
                               *trusting)  # fmt: skip
            assert reserved.returncode == 0, reserved.stderr
            account = httpx.post(f"{op_url}/v1/accounts", json={"holder_name": "Hanako"},
                                 verify=trust_operator).json()  # fmt: skip
            applied = mynahil(
                "client", "apply", "--card", str(card), "--pin", PIN, *trusting,
                "--service", "qr-pay", "--account", account["account_id"],
                "--security-code", account["security_code"],
            )  # fmt: skip
            assert applied.returncode == 0, applied.stderr
            charge = httpx.post(
                f"{op_url}/v1/till", json={"account_id": account["account_id"], "amount": 4000},
                verify=trust_operator,
            ).json()  # fmt: skip
            assert (charge["outcome"], charge["points"]) == ("granted", 1000)
            common = ["--platform", platform_url, "--operator", "qr-inc", "--key", str(key),
                      "--month", "2020-09", "--format", "json"]  # fmt: skip
            settled = mynahil("operator", "settlement", *common,
                              "--ca-file", str(platform_pki.ca_file))  # fmt: skip
            assert settled.returncode == 0, settled.stderr
            assert json.loads(settled.stdout)["net"] == 1000
            wrong = mynahil("operator", "settlement", *common,
                            "--ca-file", str(operator_pki.ca_file))  # fmt: skip
            assert wrong.returncode == 1
            _one_line_error(wrong, "did not verify", "[platform_untrusted]")


def test_the_platforms_verify_call_checks_the_operators_certificate(tmp_path: Path) -> None:
    """An operator's https verify URL is trusted only through the CA the platform was given."""
    pki = make_throwaway_pki(tmp_path / "operator-tls")
    # Not the sandbox's sample_operator: its app is served over TLS here, and no platform is
    # needed (the platform's verify call, HttpAccountCheck, is what is tested).
    books = OperatorBooks("qr-inc", "qr-pay")
    account = books.open_account("Hanako")
    platform_signer = Signer("platform", Ed25519PrivateKey.generate())
    app: FastAPI = create_operator_app(books, public_key_bytes(platform_signer.key))
    with serving(app, tls=pki) as url:
        assert url.startswith("https://")
        operator = Operator("qr-inc", "QR Inc.", b"\0" * 32, verify_url=f"{url}/v1/verify-account")
        trusting = HttpAccountCheck(platform_signer, verify=client_verify(pki.ca_file))
        assert trusting.verify_account(operator, "qr-pay", account.account_id,
                                       account.security_code)  # fmt: skip
        untrusting = HttpAccountCheck(platform_signer)  # the system's store only
        with pytest.raises(OperatorUnreachable, match="did not verify"):
            untrusting.verify_account(operator, "qr-pay", account.account_id, account.security_code)


# --- the conformance harness and the load test ----------------------------------------------


@pytest.mark.slow
def test_a_platform_at_an_https_url_is_certified_with_its_ca_file(
    tls_platform: Platform, tmp_path: Path
) -> None:
    code, results = run_target(
        f"platform:{tls_platform.url}", tmp_path / "report", platform_ca=tls_platform.ca,
        ca_file=tls_platform.tls.ca_file,
    )  # fmt: skip
    assert code == 0, results
    assert results["passed"] is True
    other = make_throwaway_pki(tmp_path / "other")
    refused = mynahil(
        "conformance", "run", "--target", f"platform:{tls_platform.url}",
        "--ca", str(tls_platform.ca), "--ca-file", str(other.ca_file),
        "--report", str(tmp_path / "refused"),
    )  # fmt: skip
    assert refused.returncode == 2
    _one_line_error(refused, "did not verify")


@pytest.mark.slow
def test_loadtest_over_tls(tls_platform: Platform, tmp_path: Path) -> None:
    scenario = str(Path(__file__).resolve().parents[2] / "scenarios" / "launch-week.toml")
    common = ["loadtest", scenario, "--platform", tls_platform.url, "--ca", str(tls_platform.ca),
              "--start", "2020-07-01T10:00", "--hours", "3", "--max-users", "2",
              "--out", str(tmp_path / "lt")]  # fmt: skip
    passed = mynahil(*common, "--ca-file", str(tls_platform.tls.ca_file))
    assert passed.returncode == 0, passed.stderr + passed.stdout
    stats = json.loads((tmp_path / "lt" / "stats.json").read_text())
    assert stats["total"]["failures"] == 0
    assert stats["stages"]["reserve"]["requests"] > 0
    other = make_throwaway_pki(tmp_path / "other")
    refused = mynahil(*common, "--ca-file", str(other.ca_file))
    assert refused.returncode == 2
    _one_line_error(refused, "--platform", "did not verify")
    # Locust's own client (it skips verification by default): the holders verify too.
    assert _locust_health(tls_platform.url, tls_platform.tls.ca_file) == "200"
    assert "CERTIFICATE_VERIFY_FAILED" in _locust_health(tls_platform.url, other.ca_file)


def _locust_health(url: str, ca_file: Path) -> str:
    """GET /v1/health by a load-test holder trusting ``ca_file``: the status, or the error.
    In a child process: Locust monkey-patches whoever imports it."""
    probe = (
        "import sys\n"
        "from locust.env import Environment\n"
        "from mynahil.simulator.loadtest.locustfile import Holder, configure\n"
        "configure(None, ('reserve',), 1.0, sys.argv[2])\n"
        "Holder.host = sys.argv[1]\n"
        "user = Holder(Environment(user_classes=[Holder], host=sys.argv[1]))\n"
        "response = user.client.get('/v1/health')\n"
        "error = getattr(response, 'error', None)\n"
        "print(response.status_code if error is None else repr(error))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, url, str(ca_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_ca_file_option_comes_from_the_environment_too(tmp_path: Path) -> None:
    env = {**os.environ, CA_FILE_ENV: str(tmp_path / "absent.pem"), "MYNAHIL_PIN": PIN}
    result = mynahil("client", "reserve", "--platform", "https://127.0.0.1:9",
                     "--card", str(tmp_path / "c.json"), env=env)  # fmt: skip
    assert result.returncode == 2
    _one_line_error(result, "absent.pem", "no such file")


@pytest.mark.slow
def test_a_vendors_https_operator_is_certified_through_its_ca_file(tmp_path: Path) -> None:
    """operator:https://…: the profile's ca_file verifies the service's hooks and the harness
    platform's signed verify calls; another CA there and the run fails saying why."""
    pki = make_throwaway_pki(tmp_path / "vendor-tls")
    keygen = mynahil("operator", "keygen", "--out", str(tmp_path / "key.pem"))
    service_port, platform_port = free_port(), free_port()
    profile = tmp_path / "vendor.toml"
    fields = (
        f'name = "Vendor Pay"\ntarget = "operator:https://127.0.0.1:{service_port}"\n'
        f'operator_id = "vendor-pay"\nservice_id = "vendor-pay-qr"\n'
        f'public_key = "{keygen.stdout.strip()}"\n'
        f'platform_listen = "127.0.0.1:{platform_port}"\nharness_dir = "harness"\nwait_s = 5\n'
    )
    profile.write_text(fields + f'ca_file = "{pki.ca_file}"\n', encoding="utf-8")
    setup = mynahil("conformance", "operator-setup", "--operator-profile", str(profile))
    assert setup.returncode == 0, setup.stderr
    service = [*MYNAHIL, "operator", "run", "--platform", f"http://127.0.0.1:{platform_port}",
               "--operator", "vendor-pay", "--key", str(tmp_path / "key.pem"),
               "--service", "vendor-pay-qr", "--port", str(service_port),
               "--platform-key", setup.stdout.strip(), "--tls-cert", str(pki.cert_file),
               "--tls-key", str(pki.key_file)]  # fmt: skip
    other = make_throwaway_pki(tmp_path / "other")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(fields + f'ca_file = "{other.ca_file}"\n', encoding="utf-8")
    health = f"https://127.0.0.1:{service_port}/openapi.json"
    with running(service, health, verify=client_verify(pki.ca_file)):
        done = mynahil("conformance", "run", "--operator-profile", str(profile),
                       "--report", str(tmp_path / "report"))  # fmt: skip
        refused = mynahil("conformance", "run", "--operator-profile", str(wrong),
                          "--report", str(tmp_path / "refused"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CERTIFIED" in done.stdout
    assert refused.returncode == 1
    results = json.loads((tmp_path / "refused" / "results.json").read_text())
    messages = " ".join(t["message"] for t in results["tests"].values())
    assert "did not verify" in messages


@pytest.mark.slow
def test_simulate_hil_trusts_an_https_platform_through_its_ca_file(
    tls_platform: Platform, tmp_path: Path
) -> None:
    """simulate --hil --platform https://…: --ca-file, as every other client command (#12)."""
    scenario = str(Path(__file__).resolve().parents[2] / "scenarios" / "launch-week.toml")
    common = ["simulate", scenario, "--hil", "3", "--quiet", "--executor", "serial",
              "--platform", tls_platform.url, "--ca", str(tls_platform.ca)]  # fmt: skip
    without = {k: v for k, v in os.environ.items() if k != CA_FILE_ENV}
    passed = mynahil(*common, "--ca-file", str(tls_platform.tls.ca_file),
                     "--out", str(tmp_path / "ok"), env=without)  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    hil = json.loads((tmp_path / "ok" / "summary.json").read_text())["hil"]
    assert hil["target"] == f"the platform at {tls_platform.url}"
    assert sum(f for _tries, f in hil["failures"].values()) < 3  # the holders reserved
    other = make_throwaway_pki(tmp_path / "other")
    refused = mynahil(*common, "--ca-file", str(other.ca_file), "--out", str(tmp_path / "no"),
                      env=without)  # fmt: skip
    assert refused.returncode == 2
    _one_line_error(refused, "--platform", "did not verify")
    missing = mynahil(*common, "--ca-file", str(tmp_path / "absent.pem"), env=without)
    assert missing.returncode == 2
    _one_line_error(missing, "--ca-file", "no such file")
