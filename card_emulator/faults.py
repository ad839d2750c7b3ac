"""Seeded, reproducible faults between a card and its reader.

A :class:`FaultProfile` says what goes wrong (latency drawn from a distribution as NFC
shows it, the card leaving the field after N APDUs or at random, corrupted response bytes,
spurious status words); a :class:`FaultyCard` wraps one card with one profile. Put it around
a card to fault that card everywhere, or around the card an attachment serves to fault that
wire only. The same seed gives the same faults at the same APDUs.
"""

from __future__ import annotations

import math
import random
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from mynahil.config import (
    Checked,
    ConfigModel,
    Integer,
    Probability,
    Text,
    problem,
    validated,
)
from mynahil.transports.base import CardLike, CardPulled

__all__ = [
    "FaultProfile",
    "FaultProfileDocument",
    "FaultProfileFile",
    "FaultyCard",
    "Latency",
    "load_fault_profile",
]


_DISTRIBUTIONS = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2, "exponential": 1}


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-APDU delay in milliseconds, ``kind:params``.

    ``fixed:M``, ``uniform:LO,HI``, ``normal:MEAN,SD`` (clipped at 0), ``lognormal:MEDIAN,SIGMA``,
    ``exponential:MEAN``.
    """

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Latency:
        kind, _, rest = text.partition(":")
        kind = kind.strip().lower()
        if kind not in _DISTRIBUTIONS:
            raise ValueError(
                f"latency {text!r}: unknown distribution {kind!r}; use one of "
                + ", ".join(sorted(_DISTRIBUTIONS))
            )
        try:
            params = tuple(float(p) for p in rest.split(",")) if rest else ()
        except ValueError:
            raise ValueError(f"latency {text!r}: parameters must be numbers") from None
        if len(params) != _DISTRIBUTIONS[kind]:
            raise ValueError(f"latency {text!r}: {kind} takes {_DISTRIBUTIONS[kind]} parameter(s)")
        if any(p < 0 or not math.isfinite(p) for p in params):
            raise ValueError(f"latency {text!r}: parameters must be finite and non-negative")
        return cls(kind, params)

    def sample_ms(self, rng: random.Random) -> float:
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            return rng.uniform(p[0], p[1])
        if self.kind == "normal":
            return max(0.0, rng.gauss(p[0], p[1]))
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(p[0]) if p[0] > 0 else -math.inf, p[1])
        return rng.expovariate(1.0 / p[0]) if p[0] > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.params)}"


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")
    return value


class LatencySpec(Checked):
    """A :class:`Latency` as written: ``kind:params``."""

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise problem(f"must be a string like lognormal:8,0.5, got {value!r}")
        try:
            Latency.parse(value)
        except ValueError as exc:
            raise problem(str(exc)) from None
        return value

    def schema(self) -> dict[str, Any]:
        kinds = "|".join(_DISTRIBUTIONS)
        return {"type": "string", "pattern": f"^({kinds}):[0-9.eE+-]+(,[0-9.eE+-]+)?$"}


class StatusWords(Checked):
    """Two-byte status words: hex strings (``"6F00"``) or integers, or ``"6F00,6581"``."""

    def check(self, value: object) -> tuple[int, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise problem(f"must be a non-empty list of status words, got {value!r}")
        words = []
        for item in items:
            try:
                word = int(item.strip(), 16) if isinstance(item, str) else item
            except ValueError:
                word = None
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
                raise problem(f"must be two-byte status words like 6F00, got {item!r}")
            words.append(word)
        return tuple(words)

    def schema(self) -> dict[str, Any]:
        word = {"anyOf": [{"type": "string", "pattern": "^[0-9A-Fa-f]{4}$"},
                          {"type": "integer", "minimum": 0, "maximum": 0xFFFF}]}  # fmt: skip
        return {"type": "array", "items": word, "minItems": 1}


class FaultProfileFile(ConfigModel):
    """What goes wrong between a card and its reader (``scenarios/faults/*.toml``, in a
    ``[faults]`` table), and the seed that makes it reproducible."""

    latency: Annotated[str, LatencySpec()] | None = Field(
        None, description="per-APDU delay in ms: fixed:M, uniform:LO,HI, normal:MEAN,SD, "
        "lognormal:MEDIAN,SIGMA or exponential:MEAN",
    )  # fmt: skip
    remove_after: Annotated[int, Integer(0)] | None = Field(
        None, description="the card leaves the field after this many APDUs"
    )
    remove_probability: Probability = Field(0.0, description="chance an APDU finds no card")
    corrupt_probability: Probability = Field(0.0, description="chance a response is corrupted")
    spurious_sw_probability: Probability = Field(
        0.0, description="chance a response is replaced by a spurious status word"
    )
    spurious_sws: Annotated[tuple[int, ...], StatusWords()] = (0x6F00, 0x6581)
    seed: Annotated[int, Integer(0, 2**63 - 1)] = 0
    name: Text = "custom"


class FaultProfileDocument(ConfigModel):
    """A fault profile file: its ``[faults]`` table."""

    faults: FaultProfileFile


def _command_line_value(text: str) -> object:
    """``2`` is a number and ``["6F00"]`` a list, as in TOML; anything else is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """What goes wrong, and the seed that makes it reproducible."""

    seed: int = 0
    latency: Latency | None = None
    remove_after: int | None = None
    remove_probability: float = 0.0
    corrupt_probability: float = 0.0
    spurious_sw_probability: float = 0.0
    spurious_sws: tuple[int, ...] = (0x6F00, 0x6581)
    name: str = field(default="custom")

    def __post_init__(self) -> None:
        for f in ("remove_probability", "corrupt_probability", "spurious_sw_probability"):
            _probability(f, getattr(self, f))
        if self.remove_after is not None and self.remove_after < 0:
            raise ValueError("remove_after must be 0 or more APDUs")
        if not self.spurious_sws or any(not 0 <= sw <= 0xFFFF for sw in self.spurious_sws):
            raise ValueError("spurious_sws must be a non-empty list of two-byte status words")

    @property
    def is_clean(self) -> bool:
        return (
            self.latency is None
            and self.remove_after is None
            and not self.remove_probability
            and not self.corrupt_probability
            and not self.spurious_sw_probability
        )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, source: str = "fault profile"
    ) -> FaultProfile:
        """From TOML-like data; unknown keys and wrong types are errors naming the key."""
        file = validated(FaultProfileFile, data, ValueError, source=source)
        return cls(
            seed=file.seed,
            latency=Latency.parse(file.latency) if file.latency else None,
            remove_after=file.remove_after,
            remove_probability=file.remove_probability,
            corrupt_probability=file.corrupt_probability,
            spurious_sw_probability=file.spurious_sw_probability,
            spurious_sws=file.spurious_sws,
            name=file.name,
        )

    @classmethod
    def parse(cls, text: str) -> FaultProfile:
        """``key=value;key=value`` as given on a command line."""
        data: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"fault spec {text!r}: {part!r} is not key=value")
            data[key.strip()] = _command_line_value(value.strip())
        return cls.from_mapping(data, source=f"fault spec {text!r}")

    def with_seed(self, seed: int) -> FaultProfile:
        return replace(self, seed=seed)


def load_fault_profile(spec: str) -> FaultProfile:
    """A TOML file (``[faults]`` table or top level), or an inline ``key=value;…`` spec."""
    path = Path(spec)
    if spec.endswith(".toml") or path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{spec}: no such fault profile file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{spec}: not valid TOML ({exc})") from None
        table = data.get("faults", data)
        table.setdefault("name", path.stem)
        return FaultProfile.from_mapping(table, source=spec)
    return FaultProfile.parse(spec)


class FaultyCard:
    """A card seen through a faulty field."""

    def __init__(
        self,
        card: CardLike,
        profile: FaultProfile,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.card = card
        self.profile = profile
        self._sleep = sleep
        self._rng = random.Random(profile.seed)
        self.apdus = 0
        self.present = True
        self.injected: Counter[str] = Counter()
        self.latency_ms_total = 0.0

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def reset(self) -> bytes:
        return self.card.reset()

    def reinsert(self) -> bytes:
        """Put the card back: a fresh power-up, the APDU count starts again."""
        self.present = True
        self.apdus = 0
        return self.card.reset()

    def transmit(self, raw: bytes) -> bytes:
        p = self.profile
        if not self.present:
            raise CardPulled("the card is not in the field")
        self.apdus += 1
        rng = self._rng
        if (p.remove_after is not None and self.apdus > p.remove_after) or (
            p.remove_probability and rng.random() < p.remove_probability
        ):
            self.present = False
            self.injected["removal"] += 1
            raise CardPulled(f"the card left the field at APDU {self.apdus}")
        if p.latency is not None:
            delay = p.latency.sample_ms(rng)
            self.latency_ms_total += delay
            self._sleep(delay / 1000.0)
        if p.spurious_sw_probability and rng.random() < p.spurious_sw_probability:
            self.injected["spurious_sw"] += 1
            return rng.choice(p.spurious_sws).to_bytes(2, "big")
        response = self.card.transmit(raw)
        if p.corrupt_probability and rng.random() < p.corrupt_probability:
            self.injected["corruption"] += 1
            damaged = bytearray(response)
            index = rng.randrange(len(damaged))
            damaged[index] ^= 1 << rng.randrange(8)
            return bytes(damaged)
        return response
