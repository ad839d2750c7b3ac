"""Refusals of the point system: the platform's refusal type, with the point system's codes."""

from __future__ import annotations

from mynahil.reference_impl.mykey.errors import MyKeyError

__all__ = ["PointsError"]


class PointsError(MyKeyError):
    """A refusal with a stable ``code``; one platform, so one problem-details mapping."""
