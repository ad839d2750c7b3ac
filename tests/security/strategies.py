"""Hypothesis strategies for hostile input at the HTTP boundary (issue #12, item 4).

Each one aims at a way text or a time used to break the platform past validation:

- :func:`header_values`: header bytes with non-ASCII (UTF-8 and bare Latin-1), NUL and other
  control bytes, the way a raw client (not a polite HTTP library) can send them.
- :func:`hostile_text`: JSON strings with NUL, other controls, non-ASCII letters, emoji and
  digits that ``str.isdigit`` accepts but ``int`` does not (``²``).
- :func:`extreme_datetimes`: RFC 3339 times at and next to the edges of what Python, UTC and
  Japan time can represent, with the widest offsets.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

__all__ = ["extreme_datetimes", "header_values", "hostile_text"]

_NASTY_CHARACTERS = "\x00\x01\x1f\x7f\x85\xa0\u00b2\u0661\u2028\ufeff\uffff\U0001f600é日"


def header_values() -> st.SearchStrategy[bytes]:
    """Header values with at least one byte outside printable ASCII (never CR or LF, which
    would end the header on the wire)."""
    unusual = st.sampled_from(
        [b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", "é".encode(), "日本".encode(), b"\xc3("]
    )
    plain = st.binary(max_size=40).map(lambda b: bytes(c for c in b if 0x20 <= c < 0x7F))
    return st.tuples(plain, unusual, plain).map(b"".join)


def hostile_text(*, min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """Strings that always hold at least one character from the nasty set (NUL first among
    them), mixed with anything else Unicode has."""
    nasty = st.sampled_from(_NASTY_CHARACTERS)
    anything = st.text(
        alphabet=st.characters(exclude_categories=["Cs"]), max_size=max(0, max_size - 1)
    )
    return (
        st.tuples(anything, nasty, anything)
        .map(lambda parts: (parts[0] + parts[1] + parts[2])[: max(max_size, 1)])
        .filter(lambda text: len(text) >= min_size and any(c in text for c in _NASTY_CHARACTERS))
    )


_OFFSETS = [timedelta(hours=14), timedelta(hours=-14), timedelta(hours=9), timedelta(0),
            timedelta(hours=23, minutes=59), timedelta(hours=-23, minutes=-59)]  # fmt: skip


def extreme_datetimes() -> st.SearchStrategy[str]:
    """RFC 3339 strings of times near year 1, year 9999, the Unix epoch and other dates far
    from any campaign, with offsets up to ±23:59 (converting the extreme ones to UTC or JST
    overflows). None of them lies in 2000..2099."""
    edges = st.sampled_from(
        [
            datetime(1, 1, 1),
            datetime(1, 1, 2),
            datetime(1900, 1, 1),
            datetime(1970, 1, 1),
            datetime(2200, 1, 1),
            datetime(9999, 12, 31, 23, 59, 59, 999999),
            datetime(9999, 12, 31),
            datetime(9998, 12, 31),
        ]
    )
    near = st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 2, 1)),
        st.datetimes(min_value=datetime(9999, 12, 1), max_value=datetime(9999, 12, 31, 23)),
    )
    return st.tuples(st.one_of(edges, near), st.sampled_from(_OFFSETS)).map(
        lambda pair: pair[0].replace(tzinfo=timezone(pair[1])).isoformat()
    )
