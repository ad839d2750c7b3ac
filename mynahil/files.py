"""Files that must never be half-written: the one place that knows how.

Cards, CA keys, serial counters, key pools and registries all go through
:func:`write_atomically`; processes that share a file take turns with :func:`flocked`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["flocked", "write_atomically"]


def write_atomically(path: Path, payload: bytes) -> None:
    """Temp file in the same folder, fsync, rename over ``path``, fsync the folder.

    A process killed at any moment leaves the old file or the new one, never a torn one.
    """
    path = Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def flocked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``lock_path`` (created if need be) for the block."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_toml(path: Path, error: Callable[[str], Exception]) -> dict[str, Any]:
    """A TOML file's top table; ``error(message)`` is raised for a file that cannot be read or
    is not TOML, and the message names the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path.name}: not valid TOML: {exc}") from None
