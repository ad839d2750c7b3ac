"""The platform's tables, as SQLAlchemy Core metadata shared by SQLite and PostgreSQL.

This is the schema the code expects; ``migrations/versions`` builds the same one, and a test
compares the two so they never drift. Times are stored as UTC and always read back as
timezone-aware UTC datetimes (:class:`UTCDateTime`), on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

__all__ = [
    "UTCDateTime",
    "audit_head",
    "audit_log",
    "certificate_bindings",
    "challenges",
    "metadata",
    "mykeys",
    "retired_ids",
    "sessions",
]


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and returns them in UTC.

    SQLite keeps the value as text without an offset, so it is written as UTC and tagged UTC
    on the way back; PostgreSQL returns ``timestamptz`` in the session's time zone, so it is
    converted. Either way ``isoformat()`` of what comes back equals that of what went in
    (after conversion to UTC), which the audit chain's hashes rely on.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware time")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Named constraints, so the migration and the metadata agree on every name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge_id", String(64), primary_key=True),
    Column("nonce", LargeBinary, nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

mykeys = Table(
    "mykeys",
    metadata,
    Column("record_id", Integer, primary_key=True, autoincrement=True),
    Column("mykey_id", String(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("password_failures", Integer, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Serials are ~100-bit integers (up to 160 bits by X.509): kept as decimal text.
certificate_bindings = Table(
    "certificate_bindings",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False, index=True),
    Column("bound_at", UTCDateTime, nullable=False),
)

# Every ID a record gave up; with mykeys.mykey_id this is every ID ever handed out.
retired_ids = Table(
    "retired_ids",
    metadata,
    Column("mykey_id", String(32), primary_key=True),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False),
    Column("retired_at", UTCDateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Append-only and hash-chained (reference_impl.audit); details are canonical JSON text.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("record_id", Integer, nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row (id=1): the last seq and hash. Locking it serialises appends to the log.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)
