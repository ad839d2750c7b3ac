"""The README's vendor, operator and planner paths as a new user meets them (issues #18 and #20,
"Done when"): the wheel built from this checkout, pip-installed with no extra into a fresh venv
outside the checkout, every command run from a folder that is not the checkout, with none of
the test run's settings.

tox's ``wheel`` env runs this module (marker ``wheel``); the unit env leaves it out. Nothing
here skips: PostgreSQL is the conftest's fixture (a failure when CI=true).
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

import httpx
import pytest

from tests.conftest import postgres_schema
from tests.support import free_port

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
    where = venv.run("python", "-c", "import conformance, mynahil; print(mynahil.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv.folder)
    version = venv.run("mynahil", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mynahil {VERSION}"


def test_the_extras_are_not_installed(venv: Venv) -> None:
    """The paths below run without any extra: pyscard, Locust and Dask are absent."""
    for module in ("smartcard", "locust", "distributed"):
        found = venv.run("python", "-c", f"import {module}")
        assert found.returncode != 0, f"{module} came with the plain wheel"


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


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
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
    mine = venv.work / "my-scenarios"
    copied = venv.run("mynahil", "scenarios", "copy", "launch-week", str(mine))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert 'extends = "round1.toml"' in (mine / "launch-week.toml").read_text(encoding="utf-8")
    out = venv.work / "sim-my-launch-week"
    run = venv.run("mynahil", "simulate", str(mine / "launch-week.toml"), "--out", str(out),
                   "--quiet", "--no-operators", "--executor", "serial")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "published" in (out / "report.html").read_text(encoding="utf-8")


# The cheapest settings that still run each scenario whole: one replication, in process, and
# without the payment side where the scenario is not about it (round 1 and 2 take ~10x longer
# with every applicant's spending to the end; operator-outage and the others keep it).
_CHEAPEST = {"round1": ["--no-operators"], "round2": ["--no-operators"]}


def test_a_planner_simulates_every_bundled_scenario_by_name(venv: Venv) -> None:
    def simulate(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        argv = ["mynahil", "simulate", name, "--out", str(venv.work / f"sim-{name}"),
                "--quiet", "--executor", "serial", *_CHEAPEST.get(name, [])]  # fmt: skip
        return name, venv.run(*argv, timeout=900)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = dict(pool.map(simulate, BUNDLED))
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"
        out = venv.work / f"sim-{name}"
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert summary["scenario"] == name
        assert (out / "report.html").is_file()
