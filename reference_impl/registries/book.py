"""One registry's book: who registered, on which day, by person reference.

A book lives in memory or in a JSON file (``<folder>/registries/<slug>.json``, beside J-LIS's
``registry.json``); every change re-reads the file under an exclusive ``flock`` and rewrites
it atomically, so ``mynahil registry register`` and a running ``mynahil serve`` can share it,
and every question re-reads it, so a server sees a registration made from the command line.

Choice: a registration is made once. Registering a person again keeps the first day (a
registration that exists is not made anew) and returns it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from mynahil.files import flocked, write_atomically

__all__ = [
    "Registration",
    "RegistrationBook",
    "RegistrationFileError",
    "RegistryKind",
    "open_registries",
]

FORMAT: Final = "mynahil-registrations/1"
_PERSON_REF: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RegistryKind(StrEnum):
    """The registrations the emulated registries hold (values: the campaigns' bonus kinds)."""

    HEALTH_INSURANCE = "health_insurance"
    PUBLIC_FUND_ACCOUNT = "public_fund_account"

    @property
    def slug(self) -> str:
        """Its name in URLs, files and the command line."""
        return _SLUGS[self]

    @property
    def label(self) -> str:
        """What people call it."""
        return _LABELS[self]

    @classmethod
    def from_slug(cls, slug: str) -> RegistryKind:
        for kind, name in _SLUGS.items():
            if name == slug:
                return kind
        raise ValueError(f"registry kind must be one of {', '.join(_SLUGS.values())}, not {slug!r}")


_SLUGS: Final = {
    RegistryKind.HEALTH_INSURANCE: "health-insurance",
    RegistryKind.PUBLIC_FUND_ACCOUNT: "public-fund",
}
_LABELS: Final = {
    RegistryKind.HEALTH_INSURANCE: "health-insurance use registry",
    RegistryKind.PUBLIC_FUND_ACCOUNT: "public-fund receiving-account registry",
}


class RegistrationFileError(ValueError):
    """A registrations file that cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Registration:
    kind: RegistryKind
    person_ref: str
    registered_on: date


def check_person_ref(person_ref: str) -> str:
    """A person reference as J-LIS hands them out (1 to 64 of A-Z a-z 0-9 _ -)."""
    if not _PERSON_REF.fullmatch(person_ref):
        raise ValueError(f"person_ref {person_ref[:70]!r}: 1 to 64 of A-Z, a-z, 0-9, _ and -")
    return person_ref


class RegistrationBook:
    """The registrations of one kind; kept in ``folder`` when given (see the module docstring)."""

    def __init__(self, kind: RegistryKind, folder: Path | None = None) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._memory: dict[str, date] = {}
        self.path = folder / "registries" / f"{kind.slug}.json" if folder is not None else None

    def _read(self) -> dict[str, date]:
        if self.path is None:
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RegistrationFileError(f"{self.path}: unreadable registrations ({exc})") from None
        try:
            if data.get("format") != FORMAT or data.get("kind") != self.kind.value:
                raise ValueError(f"expected format {FORMAT!r} of kind {self.kind.value!r}")
            return {
                check_person_ref(str(raw["person_ref"])): date.fromisoformat(raw["registered_on"])
                for raw in data["registrations"]
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistrationFileError(f"{self.path}: unreadable registrations ({exc})") from None

    def _write(self, entries: Mapping[str, date]) -> None:
        if self.path is None:
            self._memory = dict(entries)
            return
        body: dict[str, Any] = {
            "format": FORMAT,
            "kind": self.kind.value,
            "registrations": [
                {"person_ref": person, "registered_on": day.isoformat()}
                for person, day in sorted(entries.items())
            ],
        }
        write_atomically(self.path, json.dumps(body, indent=1).encode())

    def register(self, person_ref: str, on: date) -> Registration:
        """Record that the person registered on ``on``; a person registered before keeps
        their first registration (returned as it is)."""
        check_person_ref(person_ref)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = flocked(self.path.with_suffix(".lock")) if self.path is not None else nullcontext()
        with self._lock, lock:
            entries = self._read()
            if person_ref not in entries:
                entries[person_ref] = on
                self._write(entries)
            return Registration(self.kind, person_ref, entries[person_ref])

    def registration(self, person_ref: str) -> Registration | None:
        with self._lock:
            day = self._read().get(person_ref)
        return None if day is None else Registration(self.kind, person_ref, day)

    def registrations(self) -> list[Registration]:
        with self._lock:
            entries = self._read()
        return [Registration(self.kind, p, d) for p, d in sorted(entries.items())]


def open_registries(folder: Path | None) -> dict[RegistryKind, RegistrationBook]:
    """Both registries, kept beside J-LIS in ``folder`` (in memory if None)."""
    return {kind: RegistrationBook(kind, folder) for kind in RegistryKind}
