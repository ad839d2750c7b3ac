"""The emulated card attached to pcscd's vpcd reader, as real PC/SC software finds it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.transports import vpcd_reader_name, wait_for_card, wait_for_removal


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
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert wait_for_removal(vpcd_reader_name()), "pcscd still shows the card after detach"
