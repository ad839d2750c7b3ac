"""Refusals of the MyKey platform, each with a stable code the HTTP API and clients rely on."""

from __future__ import annotations

__all__ = ["MyKeyError"]


class MyKeyError(Exception):
    """A refusal: ``code`` is stable (API problem type), the message is for people."""

    code: str = "mykey_error"

    def __init__(self, code: str, message: str, *, discard_changes: bool = False) -> None:
        super().__init__(message)
        self.code = code
        # Most refusals commit what led to them (a consumed challenge, a failure count);
        # a refusal that found the store mid-race discards the transaction instead.
        self.discard_changes = discard_changes
