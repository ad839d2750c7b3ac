"""Where the bundled scenario data lives.

``scenarios/`` is data, not code. An editable install (the README's) finds it beside the code;
a wheel installs a copy under ``<prefix>/share/mynahil/scenarios``; ``MYNAHIL_SCENARIOS``
points anywhere else. The current folder's ``scenarios/`` is the last resort.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["scenarios_dir"]


def scenarios_dir() -> Path:
    chosen = os.environ.get("MYNAHIL_SCENARIOS")
    if chosen:
        return Path(chosen)
    beside_code = Path(__file__).resolve().parents[1] / "scenarios"
    if beside_code.is_dir():
        return beside_code
    installed = Path(sys.prefix) / "share" / "mynahil" / "scenarios"
    return installed if installed.is_dir() else Path.cwd() / "scenarios"
