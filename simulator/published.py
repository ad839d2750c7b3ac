"""Published figures (``scenarios/data/*.csv``): what the calibration fits and is checked on.

One row per public dated figure: ``date,value,kind,publisher,title,url,note``. ``value`` is a
cumulative count on ``date`` (people or cards since the campaign opened). ``kind`` says what was
counted (:data:`KINDS`). A row that cannot be used is an error naming the file, the line and
the field; nothing is skipped silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["COLUMNS", "KINDS", "DatasetError", "PublishedRow", "load_published"]

#: What a row may count. ``applications`` are MyNa Point applications (申込者数; in round 2,
#: people applying for any measure), ``reservations`` are MyKey IDs issued (予約者数);
#: ``applications_spend/health/account`` are round 2's three measures; cards are inputs.
KINDS = (
    "applications",
    "reservations",
    "applications_spend",
    "applications_health",
    "applications_account",
    "cards_applied",
    "cards_issued",
)
COLUMNS = ("date", "value", "kind", "publisher", "title", "url", "note")


class DatasetError(ValueError):
    """A published-figures file that cannot be used; names the file, line and field."""


@dataclass(frozen=True)
class PublishedRow:
    day: date
    value: float
    kind: str
    publisher: str
    title: str
    url: str
    note: str
    line: int  # in the file, for messages

    @property
    def source(self) -> str:
        return f"{self.publisher}: {self.title}"


def _row(path: Path, line: int, raw: dict[str, str]) -> PublishedRow:
    where = f"{path.name}:{line}"
    try:
        day = date.fromisoformat(raw["date"].strip())
    except ValueError:
        raise DatasetError(f"{where}: date must be like 2020-07-01, got {raw['date']!r}") from None
    text = raw["value"].strip().replace("_", "")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: value must be a number, got {raw['value']!r}") from None
    if not value > 0:
        raise DatasetError(f"{where}: value must be > 0, got {raw['value']!r}")
    kind = raw["kind"].strip()
    if kind not in KINDS:
        raise DatasetError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    publisher, url = raw["publisher"].strip(), raw["url"].strip()
    if not publisher:
        raise DatasetError(f"{where}: publisher is empty (every figure needs its source)")
    if not url.startswith(("http://", "https://")):
        raise DatasetError(f"{where}: url must be the source's http(s) address, got {url!r}")
    return PublishedRow(
        day, value, kind, publisher, raw["title"].strip(), url, (raw["note"] or "").strip(), line
    )


def load_published(path: Path | str) -> tuple[PublishedRow, ...]:
    """Read and check a published-figures CSV; rows come back sorted by date, then kind."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such data file") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(
            f"{path.name}:1: missing column {missing[0]!r} (need {','.join(COLUMNS)})"
        )
    rows: list[PublishedRow] = []
    seen: dict[tuple[date, str], int] = {}
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(raw.get(c) is None for c in COLUMNS):
            raise DatasetError(f"{path.name}:{line}: expected {len(COLUMNS)} fields")
        row = _row(path, line, raw)
        key = (row.day, row.kind)
        if key in seen:
            raise DatasetError(
                f"{path.name}:{line}: a second {row.kind} figure for {row.day} "
                f"(first on line {seen[key]})"
            )
        seen[key] = line
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path}: no figures")
    return tuple(sorted(rows, key=lambda r: (r.day, r.kind)))
