"""The README's vendor, operator and planner paths as a new user meets them (issues #18 and #20,
"Done when"): the wheel built from this checkout, pip-installed with no extra into a fresh venv
outside the checkout, every command run from a folder that is not the checkout, with none of
the test run's settings.

tox's ``wheel`` env runs this module (marker ``wheel``); the unit env leaves it out. Nothing
here skips when CI=true: PostgreSQL and pcscd with vpcd are the conftest's fixtures (failures
then). One venv serves every test: the reader vendor's tests, last in this file, install the
``pcsc`` extra into it as the README tells that vendor to, after every test that needs it absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import postgres_schema
from tests.support import PASSWORD, PIN, free_port

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
# What the checkout bundles: the wheel must list and run each of them by name.
BUNDLED = sorted(path.stem for path in (ROOT / "scenarios").glob("*.toml"))
# Settings of this test run that a new user would not have.
_OURS = ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV", "PYTHONHOME")


@dataclass(frozen=True)
class Venv:
    """A fresh venv with the wheel installed, and a work folder outside the checkout."""

    folder: Path
    work: Path

    @property
    def bin(self) -> Path:
        return self.folder / "bin"

    def env(self, **settings: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in _OURS and not k.startswith("MYNAHIL_")}  # fmt: skip
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["MYNAHIL_HOME"] = str(self.work / "home")
        return {**env, **settings}

    def run(
        self, *argv: str, timeout: float = 300, **settings: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]], capture_output=True, text=True, check=False,
            timeout=timeout, cwd=self.work, env=self.env(**settings),
        )  # fmt: skip

    def start(self, *argv: str) -> Started:
        """A command left running (a card in a reader, a vendor's service), its output in a log
        file (a pipe nobody reads would stall a chatty service)."""
        log = self.work / f"{argv[0]}-{time.monotonic_ns()}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(self.bin / argv[0]), *argv[1:]], cwd=self.work, env=self.env(),
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return Started(process, log)

    def has(self, module: str) -> bool:
        return self.run("python", "-c", f"import {module}").returncode == 0


@dataclass(frozen=True)
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never printed {text!r}: {self.output()}")
            time.sleep(0.2)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        return self.output()


def _outside_the_checkout(path: Path) -> None:
    assert not path.resolve().is_relative_to(ROOT), f"{path} is inside the checkout"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the tracked sources (no stale build/ of the checkout)."""
    source = tmp_path_factory.mktemp("source")
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True, timeout=600,
    )  # fmt: skip
    (built,) = dist.glob("mynahil-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    """``python -m venv`` + ``pip install mynahil-….whl``: no extra, no checkout."""
    folder = tmp_path_factory.mktemp("venv")
    work = tmp_path_factory.mktemp("work")
    _outside_the_checkout(folder)
    _outside_the_checkout(work)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    made = Venv(folder, work)
    installed = made.run("python", "-m", "pip", "install", "-q", str(wheel), timeout=900)
    assert installed.returncode == 0, installed.stderr
    return made


def test_the_installed_package_is_the_wheels(venv: Venv) -> None:
    where = venv.run("python", "-c", "import mynahil.conformance; print(mynahil.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv.folder)
    version = venv.run("mynahil", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mynahil {VERSION}"


def test_everything_installs_under_mynahil(venv: Venv) -> None:
    """PyPI has distributions named conformance and simulator: the wheel installs no top-level
    package but mynahil, the customer's folders inside it."""
    probe = (
        "import importlib.util as u; "
        "print([n for n in ('card_emulator', 'reference_impl', 'simulator', 'conformance') "
        "if u.find_spec(n) or not u.find_spec('mynahil.' + n)])"
    )
    found = venv.run("python", "-c", probe)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_the_extras_are_not_installed(venv: Venv) -> None:
    """The paths below run without any extra: pyscard, Locust and Dask are absent."""
    for module in ("smartcard", "locust", "distributed"):
        assert not venv.has(module), f"{module} came with the plain wheel (or a test before)"


@pytest.mark.parametrize(
    ("extra", "argv"),
    [
        ("pcsc", ["readers"]),
        ("pcsc", ["conformance", "run", "--target", "pcsc:Virtual PCD 00 00",
                  "--report", "no-pcsc-report"]),
        ("load", ["loadtest", "launch-week", "--platform", "http://127.0.0.1:9"]),
        ("cluster", ["simulate", "launch-week", "--executor", "dask://127.0.0.1:9",
                     "--replications", "2", "--out", "no-cluster-run"]),
    ],
)  # fmt: skip
def test_every_missing_extra_is_named_in_one_line(venv: Venv, extra: str, argv: list[str]) -> None:
    """The README: a command that needs a missing extra says which in one line (exit 2)."""
    assert not venv.has("smartcard"), "the pcsc extra is installed: run this before the reader's"
    done = venv.run("mynahil", *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"pip install 'mynahil[{extra}]'" in lines[0]


@pytest.mark.parametrize("target", ["card:inproc", "operator:sample"])
def test_a_vendor_certifies_from_the_wheel(venv: Venv, target: str) -> None:
    """`mynahil conformance run` (pytest and allure-pytest are dependencies): a self-test
    against the emulated card and the sample payment service, with the shipped spec."""
    report = venv.work / f"report-{target.replace(':', '-')}"
    run = venv.run("mynahil", "conformance", "run", "--target", target, "--report", str(report))
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((report / "results.json").read_text(encoding="utf-8"))
    assert results["passed"] is True
    assert results["self_test"] is True
    assert results["tool"] == {"name": "mynahil", "version": VERSION}
    verdicts = {r["verdict"] for r in results["requirements"].values()}
    assert verdicts <= {"passed", "not applicable", "skipped"}, verdicts
    assert "passed" in verdicts
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "SELF-TEST PASSED" in html
    assert "CERTIFIED" not in html.replace("NOT CERTIFIED", "")
    spec = (report / "spec.html").read_text(encoding="utf-8")
    for requirement in results["requirements"].values():
        anchor = requirement["spec"].split("#", 1)[1]
        assert f'id="{anchor}"' in spec, anchor  # each row's link lands on its rule
    assert list((report / "allure-results").glob("*-result.json"))


def _certified(report: Path) -> dict[str, Any]:
    """A device's run passed and its report says CERTIFIED, not SELF-TEST (a device, not ours)."""
    results: dict[str, Any] = json.loads((report / "results.json").read_text(encoding="utf-8"))
    assert results["passed"] is True
    assert results["self_test"] is False
    assert results["emulated"] is False
    assert results["verdict_label"] == "CERTIFIED"
    assert "SELF-TEST" not in (report / "index.html").read_text(encoding="utf-8")
    verdicts = {r["verdict"] for r in results["requirements"].values()}
    assert verdicts <= {"passed", "not applicable", "skipped"}, verdicts
    return results


def test_a_vendors_ci_runs_the_suite_as_the_readme_shows(venv: Venv) -> None:
    """The README's CI path: the suite as a plain pytest plugin with requirement IDs as `-k`
    and JUnit XML naming each test's requirement; `conformance run -- ARGS`; a golden stored
    with `--update-golden` and compared on the next run; conformance/README.md shipped."""
    plain = venv.run("pytest", "--pyargs", "mynahil.conformance.suites", "--conformance-target",
                     "card:inproc", "--conformance-report", "reports/ci", "-k",
                     "JPKI-PIN-003 or JPKI-SEL", "--junitxml", "junit.xml", "-q")  # fmt: skip
    assert plain.returncode == 0, plain.stdout + plain.stderr
    junit = (venv.work / "junit.xml").read_text(encoding="utf-8")
    assert '<property name="requirement" value="JPKI-PIN-003"' in junit
    results = json.loads((venv.work / "reports/ci/results.json").read_text(encoding="utf-8"))
    assert results["selection"]["partial"] is True
    assert results["requirements"]["JPKI-SIG-001"]["verdict"] == "not selected"
    golden = ["--golden", "golden.json", "--", "-k", "JPKI-SEL"]
    stored = venv.run("mynahil", "conformance", "run", "--target", "card:inproc",
                      "--report", "reports/ci-1", "--update-golden", *golden)  # fmt: skip
    assert stored.returncode == 0, stored.stdout + stored.stderr
    again = venv.run("mynahil", "conformance", "run", "--target", "card:inproc",
                     "--report", "reports/ci-2", *golden)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no changed verdict" in again.stdout
    assert (venv.folder / "share/mynahil/docs/conformance/README.md").is_file()


def test_a_phone_vendor_certifies_as_the_readme_shows(venv: Venv) -> None:
    """The README's phone path, dry run: the harness listens as a vpcd on a port pcscd's vpcd
    does not hold, and `card attach` with a contactless card plays the phone's Remote Smart
    Card Reader app (a vicc client, as the app is). No extra needed."""
    card = venv.run("mynahil", "card", "new", "--out", "phone-card.json", "--atr", "contactless",
                    "--pin", PIN, "--password", PASSWORD)  # fmt: skip
    assert card.returncode == 0, card.stderr
    port = free_port()
    run = venv.start("mynahil", "conformance", "run", "--target", f"phone:0.0.0.0:{port}",
                     "--pin", PIN, "--sign-password", PASSWORD,
                     "--report", "reports/my-phone")  # fmt: skip
    phone = venv.start("mynahil", "card", "attach", "--card", "phone-card.json",
                       "--vpcd", f"127.0.0.1:{port}", "--connect-timeout", "120")  # fmt: skip
    try:
        run.process.wait(timeout=600)
    finally:
        run.stop()
        held = phone.stop()
    assert run.process.returncode == 0, run.output()
    assert "card inserted" in held
    results = _certified(venv.work / "reports" / "my-phone")
    assert results["reader"] == f"vpcd-listen:0.0.0.0:{port}"
    assert results["atr"].startswith("3B888001")  # the contactless (Type B) ATR
    assert results["device"] == "Android phone (Remote Smart Card Reader) with a My Number card"
    for passed in ("JPKI-ATR-001", "JPKI-SIG-001", "JPKI-SIG-005", "SPEC-CARD-005"):
        assert results["requirements"][passed]["verdict"] == "passed", passed
    assert results["requirements"]["JPKI-PIN-003"]["verdict"] == "skipped"  # destructive


def test_a_payment_vendor_certifies_its_service_as_the_readme_shows(venv: Venv) -> None:
    """The README's payment path: copy the bundled operator profile, fill it in, take the
    harness platform's key from operator-setup, start the service (here the sample operator,
    run as a vendor runs theirs) and certify it by its profile."""
    copied = venv.run("mynahil", "scenarios", "copy", "operators/example", "pay")
    assert copied.returncode == 0, copied.stderr
    keygen = venv.run("mynahil", "operator", "keygen", "--out", "pay/op.pem")
    assert keygen.returncode == 0, keygen.stderr
    service_port, platform_port = free_port(), free_port()
    profile = venv.work / "pay" / "example.toml"
    filled = (
        profile.read_text(encoding="utf-8")
        .replace("REPLACE-WITH-YOUR-PUBLIC-KEY", keygen.stdout.strip())
        .replace("http://127.0.0.1:8100", f"http://127.0.0.1:{service_port}")
        .replace('"127.0.0.1:8700"', f'"127.0.0.1:{platform_port}"')
        .replace('# harness_dir = "~/.mynahil/operator-harness/example-pay"', 'harness_dir = "h"')
    )
    profile.write_text(filled, encoding="utf-8")
    setup = venv.run("mynahil", "conformance", "operator-setup", "--operator-profile", str(profile))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    platform_url = f"http://127.0.0.1:{platform_port}"
    assert f"{platform_url}/v1/operators/example-pay/transactions" in setup.stderr
    service = venv.start("mynahil", "operator", "run", "--platform", platform_url,
                         "--operator", "example-pay", "--key", "pay/op.pem",
                         "--service", "example-pay-qr", "--port", str(service_port),
                         "--platform-key", setup.stdout.strip())  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{service_port}", service.process, service.log,
                    path="/openapi.json")  # fmt: skip
        run = venv.run("mynahil", "conformance", "run", "--operator-profile", str(profile),
                       "--report", "reports/my-service")  # fmt: skip
    finally:
        service.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    results = _certified(venv.work / "reports" / "my-service")
    assert results["device"] == "Example Pay (staging)"
    assert {r["verdict"] for r in results["requirements"].values()} == {"passed"}
    assert results["endpoint"]["payment service ID"] == "example-pay-qr"


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/v1/ready"
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"serve never got ready: {log.read_text()}")


_URL_IN_HTML = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.fixture
def served(venv: Venv) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`mynahil serve` with no argument: every setting from the environment."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = venv.work / f"serve-{port}.log"
    env = venv.env(
        MYNAHIL_DB=f"sqlite:///{venv.work / f'platform-{port}.db'}",
        MYNAHIL_HOST="127.0.0.1", MYNAHIL_PORT=str(port), MYNAHIL_LOG_FORMAT="json",
    )  # fmt: skip
    with log.open("wb") as stderr:
        process = subprocess.Popen([str(venv.bin / "mynahil"), "serve"], cwd=venv.work,
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    try:
        _wait_ready(url, process, log)
        yield url, log, env
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_platform_runs_from_environment_settings_alone(
    venv: Venv, served: tuple[str, Path, dict[str, str]]
) -> None:
    url, log, env = served
    ready = httpx.get(f"{url}/v1/ready", headers={"X-Request-ID": "wheel-ready-1"}, timeout=10)
    assert ready.status_code == 200
    assert ready.headers["x-request-id"] == "wheel-ready-1"
    for page in ("/docs", "/redoc"):
        html = httpx.get(url + page, timeout=10)
        assert html.status_code == 200, page
        assert "<html" in html.text.lower()
        linked = [a or b for a, b in _URL_IN_HTML.findall(html.text)]
        assert linked, f"{page} links no asset"
        for link in linked:
            # Offline: every asset from this server, none from a CDN.
            assert not re.match(r"^(https?:)?//", link) or link.startswith(url), (page, link)
            assert httpx.get(httpx.URL(url + page).join(link), timeout=10).status_code == 200, link
    # The migration is current (the server migrated on start) and `mynahil db` agrees.
    current = subprocess.run([str(venv.bin / "mynahil"), "db", "current", "--check"],
                             cwd=venv.work, env=env, capture_output=True, text=True,
                             timeout=120, check=False)  # fmt: skip
    assert current.returncode == 0, current.stdout + current.stderr
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "mynahil.access"]
    assert {
        k: v for r in access if r["request_id"] == "wheel-ready-1" for k, v in r.items()
        if k in ("path", "status")
    } == {"path": "/v1/ready", "status": 200}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request: pytest.FixtureRequest, venv: Venv) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{venv.work / f'dba-{time.monotonic_ns()}.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


def test_a_dba_migrates_with_mynahil_db(venv: Venv, fresh_db: str) -> None:
    behind = venv.run("mynahil", "db", "current", "--check", MYNAHIL_DB=fresh_db)
    assert behind.returncode == 1, behind.stdout + behind.stderr
    upgraded = venv.run("mynahil", "db", "upgrade", MYNAHIL_DB=fresh_db)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    current = venv.run("mynahil", "db", "current", "--check", MYNAHIL_DB=fresh_db)
    assert current.returncode == 0, current.stdout + current.stderr
    sql = venv.run("mynahil", "db", "sql", MYNAHIL_DB=fresh_db)
    assert sql.returncode == 0, sql.stderr
    assert "CREATE TABLE" in sql.stdout


def test_a_planner_lists_and_copies_the_bundled_scenarios(venv: Venv) -> None:
    listed = venv.run("mynahil", "scenarios", "list")
    assert listed.returncode == 0, listed.stderr
    names = sorted(line.split()[0] for line in listed.stdout.splitlines() if line.strip())
    assert names == BUNDLED
    assert "(does not load" not in listed.stdout  # each one, parents too, loads by name
    mine = venv.work / "my-scenarios"
    copied = venv.run("mynahil", "scenarios", "copy", "launch-week", str(mine))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert 'extends = "round1.toml"' in (mine / "launch-week.toml").read_text(encoding="utf-8")
    out = venv.work / "sim-my-launch-week"
    run = venv.run("mynahil", "simulate", str(mine / "launch-week.toml"), "--out", str(out),
                   "--quiet", "--no-operators", "--executor", "serial")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "published" in (out / "report.html").read_text(encoding="utf-8")


# The bundled scenarios another one extends (round1, round2), and the ones nobody extends. A
# leaf run by name reads its parents from the wheel too, so the leaves, each simulated whole,
# cover every bundled file; the parents' own 15- and 18-month runs (about two thirds of this
# env's simulation time) only repeat the model, which the unit env tests in the checkout.
_EXTENDS = re.compile(r'^extends\s*=\s*"([^"]+)\.toml"', re.MULTILINE)
PARENTS = sorted(
    {parent for path in (ROOT / "scenarios").glob("*.toml")
     for parent in _EXTENDS.findall(path.read_text(encoding="utf-8"))}
)  # fmt: skip
LEAVES = [name for name in BUNDLED if name not in PARENTS]


def test_a_planner_simulates_every_bundled_scenario_by_name(venv: Venv) -> None:
    """Every leaf whole, by name (one replication, in process); the parents through them."""
    assert PARENTS == ["round1", "round2"]
    assert set(LEAVES) >= {"launch-week", "operator-outage", "round2-launch-stress"}

    def simulate(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        argv = ["mynahil", "simulate", name, "--out", str(venv.work / f"sim-{name}"),
                "--quiet", "--executor", "serial"]  # fmt: skip
        return name, venv.run(*argv, timeout=900)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = dict(pool.map(simulate, LEAVES))
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"
        out = venv.work / f"sim-{name}"
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert summary["scenario"] == name
        assert (out / "report.html").is_file()


# --- the reader vendor's path: last, because it installs the pcsc extra into the one venv ----

VIRTUAL_READER = "Virtual PCD 00 00"  # pcscd's vpcd reader on port 35963, as the README names it
EMULATED_CONTACT_ATR = "3BE000FF8131FE4514"


@pytest.fixture(scope="module")
def pcsc_venv(venv: Venv, wheel: Path, pcsc_stack: None) -> Venv:
    """The README's `pip install 'mynahil[pcsc]'`, the wheel standing in for the index; pcscd
    with vpcd running (a failure, not a skip, when CI=true)."""
    installed = venv.run("python", "-m", "pip", "install", "-q", f"{wheel}[pcsc]", timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert venv.has("smartcard")
    return venv


def test_a_reader_vendor_certifies_through_pcscd_as_the_readme_shows(pcsc_venv: Venv) -> None:
    """The README's reader path, dry run: `card attach` puts an emulated card in pcscd's
    virtual reader; the vendor copies the bundled reader profile, sets the ATR and who they
    are, and certifies through PC/SC as they would a real reader and card."""
    venv = pcsc_venv
    readers = venv.run("mynahil", "readers")
    assert readers.returncode == 0, readers.stderr
    assert VIRTUAL_READER in readers.stdout.splitlines()
    card = venv.run("mynahil", "card", "new", "--out", "alice.json",
                    "--pin", PIN, "--password", PASSWORD)  # fmt: skip
    assert card.returncode == 0, card.stderr
    copied = venv.run("mynahil", "scenarios", "copy", "devices/generic-reader", "reader")
    assert copied.returncode == 0, copied.stderr
    profile = venv.work / "reader" / "my-reader.toml"
    (venv.work / "reader" / "generic-reader.toml").rename(profile)
    text = profile.read_text(encoding="utf-8").replace(
        'expected_atr = ""', f'expected_atr = "{EMULATED_CONTACT_ATR}"'
    )
    profile.write_text(
        text + 'vendor = "Example Readers"\nmodel = "ER-1"\nserial = "SN-0042"\n'
        'firmware = "1.2.3"\nlab = "wheel test"\noperator = "CI"\n',
        encoding="utf-8",
    )
    held = venv.start("mynahil", "card", "attach", "--card", "alice.json",
                      "--vpcd", "127.0.0.1:35963")  # fmt: skip
    try:
        held.wait_for("card inserted")
        run = venv.run("mynahil", "conformance", "run", "--target", f"pcsc:{VIRTUAL_READER}",
                       "--device-profile", str(profile), "--pin", PIN,
                       "--sign-password", PASSWORD, "--report", "reports/my-reader",
                       timeout=600)  # fmt: skip
    finally:
        held.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "CERTIFIED" in run.stdout
    report = venv.work / "reports" / "my-reader"
    results = _certified(report)
    assert results["reader"] == f"pcsc:{VIRTUAL_READER}"
    assert results["atr"] == EMULATED_CONTACT_ATR
    requirements = results["requirements"]
    assert requirements["JPKI-ATR-001"]["verdict"] == "passed"  # the ATR the profile expects
    for passed in ("JPKI-SEL-001", "JPKI-READ-005", "JPKI-SIG-001", "JPKI-SIG-005"):
        assert requirements[passed]["verdict"] == "passed", passed
    assert requirements["SPEC-CARD-001"]["verdict"] == "skipped"  # locks the PIN: destructive
    assert results["identity"]["serial"] == "SN-0042"
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "SN-0042" in html
    assert "Example Readers" in html
    assert list((report / "traces").glob("*.jsonl"))
