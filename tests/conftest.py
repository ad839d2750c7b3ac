"""Fixtures shared by every test package: real cards issued by the real (emulated) J-LIS CA,
and real databases (a SQLite file and a fresh PostgreSQL schema per test), and the PC/SC stack."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from mynahil.card_emulator import CardState, EmulatedCard, save_card
from mynahil.reference_impl.store import SqlStore
from tests.support import DEEP_FACTOR, IN_CI, CardFactory, make_card_factory

# HYPOTHESIS_PROFILE=deep: the exhaustive run (tests/support.py `examples` scales the tests
# that bound their own count). Unset, Hypothesis keeps its own choice: "ci" under CI=true
# (derandomized: the same examples every run), "default" elsewhere.
settings.register_profile(
    "deep",
    max_examples=settings.get_profile("default").max_examples * DEEP_FACTOR,
    deadline=None,
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

# Entry-point names of the test extra's pytest plugins (hypothesis, schemathesis, locust,
# pytest-benchmark).
CHILD_SESSIONS_WITHOUT = ("hypothesispytest", "schemathesis", "locust", "benchmark")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker gets its own ``$MYNAHIL_HOME`` (a subfolder named after
    the worker), so CLI runs that create the default J-LIS CA or platform database there do not
    race another worker's. Subprocesses inherit it, and the plugin list below."""
    # A worker is known by its workerinput: PYTEST_XDIST_WORKER is also inherited by every
    # pytest a worker's test starts, which would nest the home a second time (home/gw1/gw1).
    workerinput: dict[str, str] | None = getattr(config, "workerinput", None)
    worker = workerinput["workerid"] if workerinput is not None else None
    home = os.environ.get("MYNAHIL_HOME")
    if worker and home:
        os.environ["MYNAHIL_HOME"] = str(Path(home) / worker)
    # The pytest sessions the tests start (each `conformance run`: the defect matrix alone
    # starts dozens) load none of the project's own test tools, as in a vendor's venv from
    # `pip install mynahil`; their imports (schemathesis pulls in hypothesis) were about 40% of
    # each child session's CPU time. This process has read PYTEST_ADDOPTS already; an xdist
    # controller has not yet started its workers, which read it too, so it leaves it be.
    if not worker and config.getoption("numprocesses", None):
        return
    addopts = os.environ.get("PYTEST_ADDOPTS", "").split()
    for plugin in CHILD_SESSIONS_WITHOUT:
        if f"no:{plugin}" not in addopts:
            addopts += ["-p", f"no:{plugin}"]
    os.environ["PYTEST_ADDOPTS"] = " ".join(addopts)


@pytest.fixture(scope="session")
def card_factory(tmp_path_factory: pytest.TempPathFactory) -> CardFactory:
    """Builds card states from one session-wide CA and a small key pool (fast)."""
    return make_card_factory(tmp_path_factory.mktemp("jlis"))


@pytest.fixture
def card_state(card_factory: CardFactory) -> CardState:
    """A card with both certificates; PIN 1234, signing password ABC123."""
    return card_factory()


@pytest.fixture
def card(card_state: CardState) -> EmulatedCard:
    return EmulatedCard(card_state)


@pytest.fixture
def card_path(tmp_path: Path, card_state: CardState) -> Path:
    path = tmp_path / "card.json"
    save_card(card_state, path)
    return path


# --- real databases: a SQLite file and a fresh PostgreSQL schema per test ------------------
# PostgreSQL comes from MYNAHIL_TEST_POSTGRES_URL (default: the local trust-auth server). Each
# test gets its own schema, named at random and dropped afterwards, chosen through search_path
# in the URL, so tests are isolated and can run again and again. The session's time zone is
# Asia/Tokyo there, so reading back UTC is actually tested. If the server is unreachable the
# PostgreSQL half is skipped, or fails when CI is set.

POSTGRES_URL = os.environ.get(
    "MYNAHIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The server's URL, once it has answered; skip (fail in CI) when it does not."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return POSTGRES_URL


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    """A URL whose connections see only a brand-new, empty schema, dropped afterwards."""
    schema = f"test_store_{secrets.token_hex(6)}"
    admin = create_engine(admin_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(admin_url).update_query_dict(
        {"options": f"-csearch_path={schema} -cTimeZone=Asia/Tokyo"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A URL whose connections see only a brand-new, empty schema."""
    with postgres_schema(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated store on each backend, disposed of afterwards."""
    with SqlStore.open(store_url) as opened:
        yield opened


# --- the PC/SC stack: used if present, started if installed, and a failure (not a skip) when
# CI=true and it cannot be had ---------------------------------------------------------------


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true, so the PC/SC stack is required, but: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def pcsc_stack() -> Iterator[None]:
    """pcscd with the vpcd driver, reachable through pyscard, for the whole session."""
    try:
        import smartcard  # noqa: F401
    except ImportError:
        _unavailable("pyscard is not installed (pip install 'mynahil[pcsc]')")
    from mynahil.pcscd import PcscdUnavailable, pcscd_running

    stack = pcscd_running()
    try:
        stack.__enter__()
    except PcscdUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield
    finally:
        stack.__exit__(None, None, None)
