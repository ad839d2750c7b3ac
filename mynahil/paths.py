"""Where the bundled scenario data and documents live.

``scenarios/`` is data, not code. An editable install (the README's) finds it beside the code;
a wheel installs a copy under ``<prefix>/share/mynahil/scenarios`` (the environment's
prefix, or the user's base with ``pip install --user``); ``MYNAHIL_SCENARIOS``
points anywhere else. The current folder's ``scenarios/`` is the last resort.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

__all__ = ["cache_dir", "docs_dir", "mynahil_home", "scenarios_dir"]


def _install_prefixes() -> list[Path]:
    """Where an installer may have put the wheel's data files: this environment (a venv, the
    system) and the user's base (``pip install --user``: ``~/.local`` on Linux)."""
    return [Path(sys.prefix), Path(site.getuserbase())]


def _shipped(name: str) -> Path | None:
    """A shipped data folder: beside the code (a checkout), else where the wheel put it."""
    beside_code = Path(__file__).resolve().parents[1] / name
    if beside_code.is_dir():
        return beside_code
    for prefix in _install_prefixes():
        installed = prefix / "share" / "mynahil" / name
        if installed.is_dir():
            return installed
    return None


def scenarios_dir() -> Path:
    chosen = os.environ.get("MYNAHIL_SCENARIOS")
    if chosen:
        return Path(chosen)
    return _shipped("scenarios") or Path.cwd() / "scenarios"


def docs_dir() -> Path:
    """The shipped documents: the rules the catalogue cites, the operator contract."""
    return _shipped("docs") or Path.cwd() / "docs"


def mynahil_home() -> Path:
    """Where mynahil keeps its own state by default (the platform's database, the J-LIS CA,
    the operator harness's keys): ``$MYNAHIL_HOME``, else ``~/.mynahil``."""
    return Path(os.environ.get("MYNAHIL_HOME", Path.home() / ".mynahil"))


def cache_dir() -> Path:
    """Where work that can be made again is kept between runs (the load tests' key pool, the
    card face's rendered photos): ``$MYNAHIL_CACHE``, else ``~/.cache/mynahil``."""
    configured = os.environ.get("MYNAHIL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "mynahil"
