"""The requirement catalogue (``requirements.toml``), loaded and checked."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CATALOGUE", "SUITES", "CatalogueError", "Requirement", "load_catalogue"]

CATALOGUE: Final = Path(__file__).with_name("requirements.toml")
SUITES: Final = ("card", "platform", "operator")
_ID = re.compile(r"^[A-Z]+(-[A-Z]+)+-\d{3}$")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    title: str
    source: str  # the section of SPEC.md / JPKI.md (or a seed file) the rule comes from
    suite: str  # which targets select it: card, platform or operator
    planned: bool = False  # recorded before its test exists: not required yet


def load_catalogue(path: Path = CATALOGUE) -> dict[str, Requirement]:
    """Every requirement by ID; a duplicate, a missing field or an unknown suite is an error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path.name}: not valid TOML: {exc}") from None
    found: dict[str, Requirement] = {}
    for index, raw in enumerate(data.get("requirement", [])):
        where = f"{path.name}: requirement[{index}]"
        missing = [k for k in ("id", "title", "source", "suite") if not raw.get(k)]
        if missing:
            raise CatalogueError(f"{where}: missing {', '.join(missing)}")
        rid = str(raw["id"])
        if not _ID.match(rid):
            raise CatalogueError(f"{where}: id {rid!r} is not like JPKI-PIN-003")
        if rid in found:
            raise CatalogueError(f"{path.name}: {rid} appears twice")
        if raw["suite"] not in SUITES:
            raise CatalogueError(f"{where} ({rid}): suite must be one of {', '.join(SUITES)}")
        planned = raw.get("planned", False)
        if not isinstance(planned, bool):
            raise CatalogueError(f"{where} ({rid}): planned must be true or false")
        found[rid] = Requirement(rid, str(raw["title"]), str(raw["source"]), raw["suite"], planned)
    return found
