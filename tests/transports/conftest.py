"""The PC/SC stack as a fixture: used if present, started if installed, and a failure (not a
skip) when CI=true and it cannot be had."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import IN_CI


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
