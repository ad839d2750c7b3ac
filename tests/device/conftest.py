"""The emulated card attached to pcscd's vpcd reader, as real PC/SC software finds it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.opensc import find_opensc
from mynahil.transports import vpcd_reader_name, wait_for_card, wait_for_removal


def _opensc_sees_the_token(timeout: float) -> bool:
    """OpenSC's PKCS#11 module lists the card's JPKI token. pcscd showing the card (which
    ``wait_for_card`` waits for) is not yet OpenSC having bound its JPKI driver to it: a
    consumer started in between found no token. Without OpenSC the tests that need it fail
    on their own, naming the package."""
    opensc = find_opensc()
    if opensc is None:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["pkcs11-tool", "--module", opensc.module, "--list-token-slots"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if "JPKI" in listed.stdout:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def attached(pcsc_stack: None, card_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``mynahil card attach --card PATH --vpcd 127.0.0.1:35963`` as a separate process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mynahil", "card", "attach", "--card", str(card_path),
         "--vpcd", "127.0.0.1:35963"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_card(vpcd_reader_name(), timeout=15)
        assert _opensc_sees_the_token(timeout=15), "OpenSC lists no JPKI token for the card"
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert wait_for_removal(vpcd_reader_name()), "pcscd still shows the card after detach"
