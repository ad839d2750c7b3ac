"""Refusals of the MyKey platform, each with a stable code the HTTP API and clients rely on."""

from __future__ import annotations

from mynahil.reference_impl.audited import Refusal

__all__ = ["MyKeyError"]


class MyKeyError(Refusal):
    """The platform's refusal: ``code`` is stable (API problem type), the message is for people.

    An audited operation (:func:`~mynahil.reference_impl.audited.audited_operation`) commits
    what led to it, unless it says ``discard_changes``."""

    code: str = "mykey_error"
