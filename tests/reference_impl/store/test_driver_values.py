"""A time written on the driver path is stored exactly as SQLAlchemy's own column type stores
it (rows written either way must compare and read back alike; the audit chain reads them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
    create_engine,
    insert,
    select,
    text,
)

from mynahil.reference_impl.store.driver import to_driver
from mynahil.reference_impl.store.tables import UTCDateTime
from tests.support import examples

_TABLE = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-9, minutes=-30))]
)
_ENGINE = create_engine("sqlite://")
_TABLE.metadata.create_all(_ENGINE)


@settings(max_examples=examples(300), deadline=None)
@given(moment=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=_ZONES))
def test_the_driver_path_stores_sqlalchemys_text_on_sqlite(moment: datetime) -> None:
    with _ENGINE.begin() as connection:
        connection.execute(_TABLE.delete())
        connection.execute(insert(_TABLE).values(id=1, at=moment))
        stored = connection.execute(text("SELECT at FROM t")).scalar_one()
    assert to_driver(moment, "sqlite") == stored


def _generic_read(stored: str) -> datetime:
    """SQLAlchemy's own way for a TypeDecorator: the text processor, then the decorator's."""
    process = TypeDecorator.result_processor(UTCDateTime(), _ENGINE.dialect, None)
    assert process is not None
    read = process(stored)
    assert read is not None
    return read


@settings(max_examples=examples(300), deadline=None)
@given(moment=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=_ZONES))
def test_a_time_reads_back_on_sqlite_as_sqlalchemys_generic_processing_reads_it(
    moment: datetime,
) -> None:
    """UTCDateTime's own SQLite reader (one function, for speed) gives what SQLAlchemy's text
    processor followed by ``process_result_value`` gives: the moment, in UTC, to the
    microsecond (``isoformat`` included, which the audit chain hashes)."""
    with _ENGINE.begin() as connection:
        connection.execute(_TABLE.delete())
        connection.execute(insert(_TABLE).values(id=1, at=moment))
        stored = connection.execute(text("SELECT at FROM t")).scalar_one()
        read = connection.execute(select(_TABLE.c.at)).scalar_one()
    generic = _generic_read(stored)
    assert read == generic == moment
    assert read.isoformat() == generic.isoformat() == moment.astimezone(UTC).isoformat()


@pytest.mark.parametrize(
    ("stored", "moment"),
    [
        ("2020-09-01 03:00:00.000123", datetime(2020, 9, 1, 3, 0, 0, 123, tzinfo=UTC)),
        ("2020-09-01 03:00:00", datetime(2020, 9, 1, 3, 0, tzinfo=UTC)),  # SQLite's own
        ("2020-09-01 12:00:00+09:00", datetime(2020, 9, 1, 3, 0, tzinfo=UTC)),  # a zone
    ],
)
def test_sqlite_text_reads_as_its_moment_in_utc(stored: str, moment: datetime) -> None:
    """Text this code did not write reads too: without fractions (SQLite's CURRENT_TIMESTAMP),
    or with a zone of its own (converted to UTC)."""
    process = UTCDateTime().dialect_impl(_ENGINE.dialect).result_processor(_ENGINE.dialect, None)
    assert process is not None
    read = process(stored)
    assert read == moment
    assert read.tzinfo is UTC
    assert read.isoformat() == moment.isoformat()
