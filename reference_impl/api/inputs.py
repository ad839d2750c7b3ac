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

from pydantic import BaseModel, field_validator

__all__ = ["MAX_TOKEN_LENGTH", "Body", "bearer_token", "refuse_nul"]

MAX_TOKEN_LENGTH: Final = 256
_TOKEN: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def refuse_nul(value: str) -> str:
    """``value`` unchanged, or ValueError when it carries a NUL character."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class Body(BaseModel):
    """A request body: its strings, at any depth of the model, are free of NUL."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str):
            return refuse_nul(value)
        if isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str):
                    refuse_nul(item)
        return value


def bearer_token(text: str) -> str | None:
    """The token in an ``Authorization: Bearer`` value's credentials part, or None when it
    cannot be one of the platform's tokens (wrong characters, too long)."""
    token = text.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        return None
    return token
