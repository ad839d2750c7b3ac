"""PINs at the command line: never costing a try for a value that cannot be a PIN, and never
needing to be typed where other users can read them (argv), with `mynahil client`."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.card_emulator import PinSlot, load_card
from mynahil.reference_impl.platform import build_platform, serving
from tests.support import MYNAHIL, PIN, mynahil


@pytest.fixture(scope="module")
def platform_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("secrets")
    platform = build_platform(f"sqlite:///{folder / 'platform.db'}", folder / "jlis")
    try:
        with serving(platform.app) as url:
            yield url, folder / "jlis"
    finally:
        platform.close()


@pytest.fixture
def card(tmp_path: Path, platform_url: tuple[str, Path]) -> Path:
    path = tmp_path / "card.json"
    made = mynahil("card", "new", "--out", str(path), "--ca", str(platform_url[1]))
    assert made.returncode == 0, made.stderr
    return path


def _tries(card: Path) -> int:
    return load_card(card).pins[PinSlot.AUTH].tries_left


def _reserve(card: Path, url: str, *extra: str, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [*MYNAHIL, "client", "reserve", "--card", str(card), "--platform", url, *extra],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("bad", ["12", "12345", "12a4", ""])
def test_a_malformed_pin_is_refused_before_the_card_sees_it(
    card: Path, platform_url: tuple[str, Path], bad: str
) -> None:
    before = _tries(card)
    answer = _reserve(card, platform_url[0], env={"MYNAHIL_PIN": bad})
    assert answer.returncode == 1
    assert "Nothing was sent to the card" in answer.stderr
    assert "malformed_pin" in answer.stderr
    assert _tries(card) == before == 3


def test_the_pin_from_the_environment_needs_no_argv_and_warns_of_nothing(
    card: Path, platform_url: tuple[str, Path]
) -> None:
    answer = _reserve(card, platform_url[0], env={"MYNAHIL_PIN": PIN})
    assert answer.returncode == 0, answer.stderr
    assert len(answer.stdout.strip().splitlines()[-1]) == 8
    assert "warning" not in answer.stderr


def test_a_pin_on_argv_still_works_with_a_warning(
    card: Path, platform_url: tuple[str, Path]
) -> None:
    answer = _reserve(card, platform_url[0], "--pin", PIN)
    assert answer.returncode == 0, answer.stderr
    assert "visible to other users" in answer.stderr


def test_no_pin_and_no_terminal_is_a_clear_error(
    card: Path, platform_url: tuple[str, Path]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MYNAHIL_PIN"}
    answer = subprocess.run(
        [*MYNAHIL, "client", "reserve", "--card", str(card), "--platform", platform_url[0]],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    assert answer.returncode == 2
    assert "$MYNAHIL_PIN" in answer.stderr
    assert _tries(card) == 3


def test_in_a_terminal_the_pin_is_asked_for_and_not_echoed(
    card: Path, platform_url: tuple[str, Path]
) -> None:
    argv = [*MYNAHIL, "client", "reserve", "--card", str(card), "--platform", platform_url[0]]
    env = {k: v for k, v in os.environ.items() if k != "MYNAHIL_PIN"}
    # A new session whose controlling terminal is the pty (util-linux setsid --ctty): getpass
    # reads /dev/tty. Not pty.fork: forking this threaded process can deadlock the child.
    terminal, child_side = pty.openpty()
    child = subprocess.Popen(
        ["setsid", "--ctty", *argv], stdin=child_side, stdout=child_side, stderr=child_side,
        env=env,
    )  # fmt: skip
    os.close(child_side)
    screen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        # Type only once the prompt is up with echo off: getpass flushes earlier input.
        if not answered and b"PIN" in screen and not termios.tcgetattr(terminal)[3] & termios.ECHO:
            os.write(terminal, b"1234\n")
            answered = True
        if not select.select([terminal], [], [], 0.2)[0]:
            if child.poll() is not None:
                break
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed the terminal: it has exited
            break
        if not chunk:
            break
        screen += chunk
    code = child.wait(timeout=30)
    os.close(terminal)
    text = screen.decode(errors="replace")
    assert code == 0, text
    assert answered, text
    assert PIN not in text  # hidden input: the terminal never showed it
    mykey_id = [line.strip() for line in text.splitlines() if line.strip()][-1]
    assert len(mykey_id) == 8, text
