"""Where the bundled scenario data lives.

``scenarios/`` is data, not code, and is not inside the installed packages: an editable install
(the README's) finds it beside the code; a wheel installed elsewhere finds it in the current
folder (run from the checkout, as tox does) or wherever ``MYNAHIL_SCENARIOS`` points.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["scenarios_dir"]


def scenarios_dir() -> Path:
    chosen = os.environ.get("MYNAHIL_SCENARIOS")
    if chosen:
        return Path(chosen)
    beside_code = Path(__file__).resolve().parents[1] / "scenarios"
    return beside_code if beside_code.is_dir() else Path.cwd() / "scenarios"
