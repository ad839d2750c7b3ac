"""The requirement catalogue (``requirements.toml``), loaded and checked."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CATALOGUE", "CatalogueError", "Requirement", "load_catalogue"]

CATALOGUE: Final = Path(__file__).with_name("requirements.toml")


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    title: str
    source: str
    suite: str


def load_catalogue(path: Path = CATALOGUE) -> dict[str, Requirement]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found: dict[str, Requirement] = {}
    for index, raw in enumerate(data.get("requirement", [])):
        missing = [k for k in ("id", "title", "source", "suite") if not raw.get(k)]
        if missing:
            raise CatalogueError(f"{path.name}: requirement[{index}]: missing {', '.join(missing)}")
        if raw["id"] in found:
            raise CatalogueError(f"{path.name}: {raw['id']} appears twice")
        found[raw["id"]] = Requirement(raw["id"], raw["title"], raw["source"], raw["suite"])
    return found
