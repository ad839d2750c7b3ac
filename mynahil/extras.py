"""Optional parts of mynahil and the extra that brings each, named in one line when missing."""

from __future__ import annotations

import importlib

__all__ = ["EXTRAS", "MissingExtra", "require"]

# module that must import -> (the pip extra that installs it, what needs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "smartcard": ("pcsc", "PC/SC readers (pyscard; builds against libpcsclite-dev and swig)"),
    "locust": ("load", "mynahil loadtest (Locust)"),
    "distributed": ("cluster", "simulation replications on a Dask cluster"),
}


class MissingExtra(RuntimeError):
    """An optional part is not installed; the message says which extra installs it."""


def require(module: str) -> None:
    """Import ``module`` (callers import it next anyway); raise :class:`MissingExtra` naming
    the extra that installs it when it cannot be imported."""
    extra, what = EXTRAS[module]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {module!r}: pip install 'mynahil[{extra}]'") from None
