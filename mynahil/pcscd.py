"""pcscd as a child process, for tests, CI and the demo.

One pcscd serves a machine. If one already runs, it is used as it is; otherwise one is
started in the foreground (``pcscd -f``) as our child and stopped with SIGTERM + wait (a
SIGKILLed pcscd leaves a socket behind that blocks the next start for a moment).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .transports.pcsc import list_readers, pcsc_available
from .vpcd_protocol import vpcd_reader_name

__all__ = ["PcscdUnavailable", "pcscd_running", "vpcd_driver_installed"]

_VPCD_DRIVER_PATHS = (
    Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so"),
)


class PcscdUnavailable(RuntimeError):
    """The PC/SC stack this needs is not on the machine (the message says what to install)."""


def vpcd_driver_installed() -> bool:
    return any(p.exists() for p in _VPCD_DRIVER_PATHS)


def _wait_for_vpcd_readers(deadline: float) -> None:
    wanted = vpcd_reader_name()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if wanted in list_readers():
                return
        time.sleep(0.05)
    raise PcscdUnavailable(
        f"pcscd started but shows no {wanted!r} reader: is vsmartcard-vpcd installed?"
    )


@contextlib.contextmanager
def pcscd_running(timeout: float = 10.0) -> Iterator[bool]:
    """Ensure pcscd with the vpcd driver is up for the block; yields True if we started it."""
    try:
        import smartcard  # noqa: F401
    except ImportError:
        raise PcscdUnavailable(
            "pyscard is not installed: pip install 'mynahil[pcsc]' (needs libpcsclite-dev, swig)"
        ) from None
    if pcsc_available():
        _wait_for_vpcd_readers(time.monotonic() + timeout)
        yield False
        return
    binary = shutil.which("pcscd") or next(
        (p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if Path(p).exists()), None
    )
    if binary is None:
        raise PcscdUnavailable(
            "pcscd is not installed: apt-get install pcscd vsmartcard-vpcd libpcsclite-dev"
        )
    if not vpcd_driver_installed():
        raise PcscdUnavailable("pcscd has no vpcd driver: apt-get install vsmartcard-vpcd")
    process = subprocess.Popen(
        [binary, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while not pcsc_available():
            if process.poll() is not None:
                raise PcscdUnavailable(f"pcscd exited at start with code {process.returncode}")
            if time.monotonic() > deadline:
                raise PcscdUnavailable(f"pcscd did not answer within {timeout:g} s")
            time.sleep(0.05)
        _wait_for_vpcd_readers(deadline)
        yield True
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
