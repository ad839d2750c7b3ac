"""Japan's time zone: the scheme's deadlines, business days and settlement hours are in it."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Final

__all__ = ["JST"]

#: Japan Standard Time, UTC+9 all year (Japan has no daylight saving time).
JST: Final = timezone(timedelta(hours=9), "JST")
