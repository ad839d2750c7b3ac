"""Golden results: a stored reference run's verdict per requirement, and what changed since.

A golden file is JSON: ``{"target": "card:inproc", "verdicts": {"JPKI-PIN-003": "passed", …}}``
(OpenSC's p11test keeps reference JSON the same way). :func:`changed_verdicts` lists every
requirement whose verdict differs, including one that appeared or disappeared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GOLDENS", "Change", "GoldenError", "changed_verdicts", "golden_of", "load_golden"]

GOLDENS = Path(__file__).resolve().with_name("goldens")
ABSENT = "absent"


class GoldenError(ValueError):
    """A golden file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Change:
    requirement: str
    golden: str
    now: str

    def __str__(self) -> str:
        return f"{self.requirement}: {self.golden} -> {self.now}"


def golden_of(results: dict[str, Any]) -> dict[str, Any]:
    """The golden record of a run (``results.json`` as a dict)."""
    return {
        "target": results["target"],
        "verdicts": {rid: v["verdict"] for rid, v in sorted(results["requirements"].items())},
    }


def load_golden(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GoldenError(f"--golden {path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise GoldenError(f"--golden {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    verdicts = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(verdicts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in verdicts.items()
    ):
        raise GoldenError(f'--golden {path}: needs "verdicts": {{"REQ-ID": "passed", …}}')
    if not isinstance(data.get("target", ""), str):
        raise GoldenError(f'--golden {path}: "target" must be a string')
    golden: dict[str, Any] = data
    return golden


def changed_verdicts(golden: dict[str, Any], results: dict[str, Any]) -> list[Change]:
    """Every requirement whose verdict in ``results`` differs from ``golden``'s, by ID."""
    before: dict[str, str] = golden["verdicts"]
    now = golden_of(results)["verdicts"]
    return [
        Change(rid, before.get(rid, ABSENT), now.get(rid, ABSENT))
        for rid in sorted(set(before) | set(now))
        if before.get(rid, ABSENT) != now.get(rid, ABSENT)
    ]
