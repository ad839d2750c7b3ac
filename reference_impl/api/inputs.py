"""What the HTTP boundary accepts, in one place: every request body derives from
:class:`Body`, bearer tokens pass :func:`bearer_token`.

The rule (issue #12): no input produces a 5xx. A client's text reaches SQL, hashes and the
audit log only after it was checked here; what does not fit is a 422 problem naming the field
(or a 401 for a credential), never an exception deep in a driver:

- **strings** never carry NUL (PostgreSQL's text types cannot hold one; SQLite would store it
  and compare it oddly). Lone surrogates are already refused by the JSON decoder.
- **numbers and times** are exactly the documented JSON types where a model asks for it
  (``strict=True``: ``"1000"``, ``1000.0`` and ``true`` are not an amount; a number is not a
  time).
- **bearer tokens** are the URL-safe base64 the platform hands out: anything else is simply
  not a session (non-ASCII bytes in a header used to reach ``str.encode("ascii")``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

__all__ = ["MAX_TOKEN_LENGTH", "Body", "bearer_token", "refuse_nul"]

MAX_TOKEN_LENGTH: Final = 256
_TOKEN: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def refuse_nul(value: str) -> str:
    """``value`` unchanged, or ValueError when it carries a NUL character."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_NUL_FREE: Final = core_schema.custom_error_schema(
    core_schema.str_schema(pattern=r"^[^\x00]*$"),
    custom_error_type="string_nul",
    custom_error_message="must not contain NUL characters",
)
_NOT_SCHEMAS: Final = frozenset({"cls", "config", "metadata", "ref", "members", "serialization"})


def _refuse_nul_in_strings(schema: Any, *, root: bool = False) -> None:
    """Chain the NUL check after every string schema in ``schema`` (in place). Another model
    met on the way is left alone: a Body checks its own strings."""
    if schema is _NUL_FREE or (
        isinstance(schema, dict)
        and schema.get("type") == "chain"
        and schema.get("steps", [None])[-1] is _NUL_FREE
    ):
        return  # checked already (schemas share parts)
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            if isinstance(item, dict) and item.get("type") == "str":
                schema[index] = core_schema.chain_schema([item, _NUL_FREE])
            else:
                _refuse_nul_in_strings(item)
    elif isinstance(schema, dict) and (root or schema.get("type") != "model"):
        for key, value in schema.items():
            if key in _NOT_SCHEMAS:
                continue
            if isinstance(value, dict) and value.get("type") == "str":
                schema[key] = core_schema.chain_schema([value, _NUL_FREE])
            else:
                _refuse_nul_in_strings(value)


class Body(BaseModel):
    """A request body: its strings, at any depth of the model, are free of NUL.

    The check is added to the model's validation schema (a pattern pydantic-core matches in
    Rust) rather than written as a Python validator: a batch of 1,000 reports called the
    Python one 8,000 times, a third of the batch's validation time.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        _refuse_nul_in_strings(schema, root=True)
        return schema


def bearer_token(text: str) -> str | None:
    """The token in an ``Authorization: Bearer`` value's credentials part, or None when it
    cannot be one of the platform's tokens (wrong characters, too long)."""
    token = text.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        return None
    return token
