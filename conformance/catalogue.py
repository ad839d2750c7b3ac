"""The requirement catalogue (``requirements.toml``), loaded and checked.

Each requirement carries its rule in the project's own words (``rule``), the public sources the
facts in it come from (``public``: a key of the catalogue's ``[sources]`` table, then what in it)
and, where nothing public says, what the project chose (``choice``). At least one of the two
must be given, so every statement is marked as public fact or as the project's own choice.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CATALOGUE",
    "SUITES",
    "CatalogueError",
    "Requirement",
    "load_catalogue",
    "load_sources",
]

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
    rule: str = ""  # what a conforming card, reader, platform or operator must do
    public: tuple[str, ...] = ()  # "source-key: what in it" for each public source of the rule
    choice: str = ""  # what in the rule is the emulator's or reference platform's own choice

    def public_sources(self) -> list[tuple[str, str]]:
        """Each public source as (key of ``[sources]``, what in it)."""
        return [(key.strip(), detail.strip()) for key, _, detail in
                (entry.partition(":") for entry in self.public)]  # fmt: skip


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path.name}: not valid TOML: {exc}") from None


def load_sources(path: Path = CATALOGUE) -> dict[str, str]:
    """The public sources rules cite (``[sources]``): key -> what it is."""
    sources = _read(path).get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise CatalogueError(f"{path.name}: [sources] must map keys to descriptions")
    return {str(k): v for k, v in sources.items()}


def load_catalogue(path: Path = CATALOGUE) -> dict[str, Requirement]:
    """Every requirement by ID; a duplicate, a missing field or an unknown suite is an error."""
    data = _read(path)
    sources = load_sources(path)
    found: dict[str, Requirement] = {}
    for index, raw in enumerate(data.get("requirement", [])):
        where = f"{path.name}: requirement[{index}]"
        missing = [k for k in ("id", "title", "source", "suite", "rule") if not raw.get(k)]
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
        public, choice = raw.get("public", []), raw.get("choice", "")
        if not isinstance(public, list) or not all(isinstance(p, str) for p in public):
            raise CatalogueError(f"{where} ({rid}): public must be a list of strings")
        if not isinstance(choice, str):
            raise CatalogueError(f"{where} ({rid}): choice must be a string")
        if not public and not choice.strip():
            raise CatalogueError(
                f"{where} ({rid}): give its public sources (public) or say what is the "
                "project's own choice (choice)"
            )
        unknown = [p for p in public if p.partition(":")[0].strip() not in sources]
        if unknown:
            raise CatalogueError(f"{where} ({rid}): public {unknown[0]!r}: not a key of [sources]")
        found[rid] = Requirement(
            rid, str(raw["title"]), str(raw["source"]), raw["suite"], planned,
            " ".join(str(raw["rule"]).split()), tuple(public), " ".join(choice.split()),
        )  # fmt: skip
    return found
