"""Where the bundled scenario data and documents live.

``scenarios/`` is data, not code. An editable install (the README's) finds it beside the code;
a wheel installs a copy under ``<prefix>/share/mynahil/scenarios``; ``MYNAHIL_SCENARIOS``
points anywhere else. The current folder's ``scenarios/`` is the last resort.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["docs_dir", "scenarios_dir"]


def _shipped(name: str) -> Path | None:
    """A shipped data folder: beside the code (a checkout), else where the wheel put it."""
    beside_code = Path(__file__).resolve().parents[1] / name
    if beside_code.is_dir():
        return beside_code
    installed = Path(sys.prefix) / "share" / "mynahil" / name
    return installed if installed.is_dir() else None


def scenarios_dir() -> Path:
    chosen = os.environ.get("MYNAHIL_SCENARIOS")
    if chosen:
        return Path(chosen)
    return _shipped("scenarios") or Path.cwd() / "scenarios"


def docs_dir() -> Path:
    """The shipped documents: the rules the catalogue cites, the operator contract."""
    return _shipped("docs") or Path.cwd() / "docs"
