"""Configuration files (scenarios, campaigns, device, fault and operator profiles) through one
validation library: pydantic models, one error style, one JSON Schema per kind of file.

Every model forbids unknown keys (a typo never falls back to a default silently) and coerces
nothing: ``"5000"`` is not a number, ``true`` is not 1. A file's first error is reported as
``dotted.path[0].key: what was expected, got what``; :func:`validated` raises it as the
caller's own error class, so each kind of file keeps its error type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "Checked",
    "ConfigModel",
    "Day",
    "Integer",
    "LocalDate",
    "Name",
    "Number",
    "OneOf",
    "Positive",
    "Probability",
    "Text",
    "at_key",
    "first_problem",
    "json_schema",
    "problem",
    "validated",
    "values",
]

_Model = TypeVar("_Model", bound=BaseModel)


class ConfigModel(BaseModel):
    """A table of a configuration file: unknown keys refused, nothing coerced, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def problem(message: str, **context: object) -> PydanticCustomError:
    return PydanticCustomError("config", message.replace("{", "{{").replace("}", "}}"), context)


def at_key(key: str, message: str) -> PydanticCustomError:
    """An error a model's own check finds in one of its keys (``end``: must not be before
    start): reported under that key, not the table's."""
    return PydanticCustomError("config_key", "{message}", {"key": key, "message": message})


def _bound(value: float) -> str:
    return f"{value:g}"


class Checked:
    """Metadata for ``Annotated[T, ...]``: validates with :meth:`check` (nothing coerced, the
    project's wording) and describes the value to JSON Schema with :meth:`schema`."""

    def check(self, value: object) -> object:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return self.schema()


@dataclass(frozen=True, slots=True)
class Number(Checked):
    """A TOML integer or float in ``lo..hi`` (finite), as a float: ``Annotated[float,
    Number(0, 1)]``."""

    lo: float = -math.inf
    hi: float = math.inf

    def check(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise problem(f"must be a number, got {value!r}")
        if not math.isfinite(value) or not self.lo <= value <= self.hi:
            if self.lo == 0 and self.hi == 1:
                raise problem(f"must be between 0 and 1, got {value}")
            bound = (
                f">= {_bound(self.lo)}"
                if self.hi == math.inf
                else f"between {_bound(self.lo)} and {_bound(self.hi)}"
            )
            raise problem(f"must be {bound}, got {value}")
        return float(value)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        if self.lo != -math.inf:
            schema["minimum"] = self.lo
        if self.hi != math.inf:
            schema["maximum"] = self.hi
        return schema


@dataclass(frozen=True, slots=True)
class Positive(Checked):
    """A TOML number above 0 (and at most ``hi``), as a float."""

    hi: float = math.inf

    def check(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise problem(f"must be a number, got {value!r}")
        if not math.isfinite(value) or not 0 < value <= self.hi:
            most = "" if self.hi == math.inf else f" at most {_bound(self.hi)}"
            raise problem(f"must be a positive number{most}, got {value}")
        return float(value)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
        if self.hi != math.inf:
            schema["maximum"] = self.hi
        return schema


@dataclass(frozen=True, slots=True)
class Integer(Checked):
    """A TOML integer in ``lo..hi``: ``Annotated[int, Integer(1, 100)]``."""

    lo: int = 0
    hi: int = 10**9

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem(f"must be an integer, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise problem(f"must be an integer between {self.lo} and {self.hi}, got {value}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


class OneOf(Checked):
    """One of a few strings: ``Annotated[str, OneOf("all", "weekdays")]``."""

    def __init__(self, *options: str) -> None:
        self.options = options

    def check(self, value: object) -> str:
        if value not in self.options:
            *first, last = self.options
            said = (
                f"{', '.join(first)} or {last}"
                if len(self.options) <= 3
                else f"one of {', '.join(self.options)}"
            )
            raise problem(f"must be {said}, got {value!r}")
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.options)}


def _day(value: object) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise problem(f"must be a date like 2020-07-01, got {value!r}")


def _local_date(value: object) -> date:
    # TOML local dates arrive as date; a datetime is a date too, so it is excluded explicitly.
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    raise problem(f"must be a date like 2020-09-01, got {value!r}")


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise problem(f"must be a string, got {value!r}")
    return value


#: A TOML local date (``2020-07-01``) or the same as a string.
Day = Annotated[date, PlainValidator(_day), WithJsonSchema({"type": "string", "format": "date"})]
#: A TOML local date only (``2020-07-01`` unquoted): a string is refused.
LocalDate = Annotated[
    date, PlainValidator(_local_date), WithJsonSchema({"type": "string", "format": "date"})
]
#: A string with something in it (surrounding spaces dropped).
Name = Annotated[str, PlainValidator(_name), WithJsonSchema({"type": "string", "minLength": 1})]
Probability = Annotated[float, Number(0.0, 1.0)]
Text = Annotated[str, PlainValidator(_text), WithJsonSchema({"type": "string"})]


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model a field's annotation holds (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _table_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table at ``loc``, following ``model``'s fields."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # an array's row: the same model
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
        )
        current = None if field is None else _model_in(field.annotation)
    return current


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys the table at ``loc`` may have."""
    table = _table_at(model, loc)
    return None if table is None else [f.alias or n for n, f in table.model_fields.items()]


def _description(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The ``description`` of the field at ``loc``, which an error repeats."""
    if not loc or not isinstance(loc[-1], str):
        return None
    table = _table_at(model, loc[:-1])
    if table is None:
        return None
    field = next((f for n, f in table.model_fields.items() if loc[-1] in (n, f.alias)), None)
    return None if field is None else field.description


def first_problem(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """``path: message`` of the first error, in the project's words."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "config_key":
        key, message = str(context["key"]), str(context["message"])
        loc = (*loc, key) if key else loc
    elif kind == "config":
        message = error["msg"]
    elif kind == "missing":
        message = "missing"
    elif kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1]) if model is not None else None
        message = f"unknown key (expected one of: {', '.join(known)})" if known else "unknown key"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"must be a table, got {error['input']!r}"
    elif kind in ("list_type", "tuple_type"):
        message = f"must be an array, got {error['input']!r}"
    elif kind == "literal_error":
        message = (
            f"must be {context.get('expected', 'one of the listed values')}, got {error['input']!r}"
        )
    elif kind == "too_short" and context.get("min_length") == 1:
        message = "must not be empty"
    elif kind == "too_short":
        message = f"must have at least {context.get('min_length')} items, got {error['input']!r}"
    elif kind == "too_long":
        message = f"must have at most {context.get('max_length')} items, got {error['input']!r}"
    elif kind in ("string_type",):
        message = f"must be a string, got {error['input']!r}"
    else:
        message = f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {error['input']!r}"
    described = _description(model, loc) if model is not None else None
    if described and kind not in ("extra_forbidden", "config_key") and described not in message:
        message = f"{message} ({described})"
    where = _where((prefix, *loc) if prefix else loc)
    return f"{where}: {message}" if where else message


def validated(
    model: type[_Model],
    data: object,
    error: Callable[[str], Exception],
    *,
    prefix: str = "",
    source: str = "",
    context: Mapping[str, Any] | None = None,
) -> _Model:
    """``data`` as ``model``, or ``error("source: first problem")`` raised; ``prefix`` is the
    dotted path of ``data`` inside its file, ``source`` the file's name."""
    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        problem = first_problem(exc, prefix, model)
        raise error(f"{source}: {problem}" if source else problem) from None


def values(model: BaseModel, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A validated table's values by field name, to build a domain object from (no copies:
    ``model_dump`` would copy each one, and sweeps load a scenario many times)."""
    return {key: value for key, value in vars(model).items() if key not in exclude}


def json_schema(
    model: type[BaseModel],
    title: str,
    *,
    extra_properties: Mapping[str, dict[str, Any]] | None = None,
    extendable: bool = False,
) -> dict[str, Any]:
    """The JSON Schema editors validate a file of this kind against.

    Draft 7, which taplo (Even Better TOML) and most editors support. ``extra_properties``
    adds or widens top-level keys the loader resolves before validating (``operators =
    "FILE"``). An ``extendable`` file may say ``extends = "other.toml"``, and then it only
    overrides what it names: nothing is required anywhere in it.
    """
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    schema.pop("title", None)
    properties = schema.setdefault("properties", {})
    for key, extra in (extra_properties or {}).items():
        properties[key] = {"anyOf": [properties[key], extra]} if key in properties else extra
    if not extendable:
        return {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": title,
            **schema,
            "$defs": definitions,
        }
    properties["extends"] = {
        "type": "string",
        "description": "another file this one starts from (beside it, else the bundled one); "
        "this file then overrides only the tables and keys it gives",
    }
    partial = {f"{name}Partial": _partial(definition) for name, definition in definitions.items()}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "description": schema.get("description", ""),
        "if": {"required": ["extends"]},
        "then": {"$ref": f"#/$defs/{model.__name__}Partial"},
        "else": {"$ref": f"#/$defs/{model.__name__}"},
        "$defs": {
            **definitions,
            **partial,
            model.__name__: schema,
            f"{model.__name__}Partial": _partial(schema),
        },
    }


def _partial(node: Any) -> Any:
    """``node`` with nothing required, its references pointing at the partial definitions."""
    if isinstance(node, dict):
        return {
            key: (f"{value}Partial" if key == "$ref" else _partial(value))
            for key, value in node.items()
            if key != "required"
        }
    if isinstance(node, list):
        return [_partial(item) for item in node]
    return node
