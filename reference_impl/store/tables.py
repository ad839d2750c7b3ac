"""The platform's tables, as SQLAlchemy Core metadata shared by SQLite and PostgreSQL.

This is the schema the code expects; ``migrations/versions`` builds the same one, and a test
compares the two so they never drift. Times are stored as UTC and always read back as
timezone-aware UTC datetimes (:class:`UTCDateTime`), on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from .driver import as_utc, utc

__all__ = [
    "UTCDateTime",
    "applications",
    "audit_head",
    "audit_log",
    "business_clock",
    "certificate_bindings",
    "challenges",
    "jlis_cards",
    "jlis_certificates",
    "jlis_crl_number",
    "ledger",
    "linked_accounts",
    "metadata",
    "mykeys",
    "operator_nonces",
    "operators",
    "payment_services",
    "persons",
    "point_totals",
    "point_transactions",
    "refusal_budget",
    "retired_ids",
    "sessions",
    "staff",
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
        moment = as_utc(value)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return utc(value)

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the stored text straight to aware UTC by :func:`.driver.utc` alone: the
        same value as SQLAlchemy's text processor followed by :meth:`process_result_value`
        (a test holds them equal), read ~2,000 times a batch of reports."""
        if dialect.name == "sqlite":
            return utc
        return super().result_processor(dialect, coltype)


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

# One row per person the platform knows (issue 13): J-LIS's opaque person reference, never the
# My Number. NULL for a person carried over from before the platform kept them (migration 0005).
persons = Table(
    "persons",
    metadata,
    Column("person_id", Integer, primary_key=True, autoincrement=True),
    Column("person_ref", String(64), nullable=True, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
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
    # The person whose ID this is (persons.person_id; set for every record since 0005).
    Column("person_id", Integer, nullable=True, index=True),
)

# Serials are ~160-bit integers (at most 160 bits by X.509): kept as decimal text.
certificate_bindings = Table(
    "certificate_bindings",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False, index=True),
    Column("bound_at", UTCDateTime, nullable=False),
    # The certificate's validity (NULL for bindings made before the platform kept it).
    Column("not_before", UTCDateTime, nullable=True),
    Column("not_after", UTCDateTime, nullable=True),
    sqlite_with_rowid=False,  # one B-tree keyed by serial, not a rowid table and an index (0007)
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

# Append-only and hash-chained (mynahil.reference_impl.audit); details are canonical JSON text.
audit_log = Table(
    "audit_log",
    metadata,
    # INTEGER on SQLite, so seq is the rowid: one B-tree, not a table and an index (0007)
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    ),
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


# The platform's own staff (mynahil.reference_impl.staff): a bearer token's SHA-256, never the
# token.
staff = Table(
    "staff",
    metadata,
    Column("staff_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)


# --- the point system -------------------------------------------------------------------------

# feed_seq: the last position handed out in this operator's feed of applications. Taking the
# next one locks the row until commit, so positions are gap-free and commit in order.
operators = Table(
    "operators",
    metadata,
    Column("operator_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("verify_url", Text, nullable=True),
    Column("feed_seq", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

payment_services = Table(
    "payment_services",
    metadata,
    Column("service_id", String(64), primary_key=True),
    Column("operator_id", String(64), ForeignKey("operators.operator_id"), nullable=False),
    Column("name", Text, nullable=False),
)

# Nonces seen in signed operator requests, kept while their timestamps are fresh.
operator_nonces = Table(
    "operator_nonces",
    metadata,
    Column("operator_id", String(64), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False, index=True),
)

# A payment account belongs to one MyKey record, for good.
linked_accounts = Table(
    "linked_accounts",
    metadata,
    Column("service_id", String(64), primary_key=True),
    Column("account_id", String(128), primary_key=True),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False),
    Column("linked_at", UTCDateTime, nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("application_id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(32), nullable=False),
    Column("record_id", Integer, ForeignKey("mykeys.record_id"), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("operator_id", String(64), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("card_applied_on", Date, nullable=False),
    Column("feed_seq", BigInteger, nullable=False),
    # The person who applied: one application per person and campaign, whatever their ID.
    Column("person_id", Integer, nullable=False),
    UniqueConstraint("campaign_id", "person_id", name="uq_applications_campaign_person"),
    UniqueConstraint("operator_id", "feed_seq", name="uq_applications_operator_feed"),
    # Each batch of reports looks up its accounts' applications (migration 0008).
    Index(None, "service_id", "account_id"),
)

# Each person's points per cap group, over all their MyKey IDs (revoked ones too: a new ID
# never gets a second cap); locked (FOR UPDATE) while a batch decides grants.
point_totals = Table(
    "point_totals",
    metadata,
    Column("person_id", Integer, primary_key=True),
    Column("cap_group", String(64), primary_key=True),
    Column("points", Integer, nullable=False),
    CheckConstraint("points >= 0", name="not_negative"),
)

# Every decided report, refusals included: a retried idempotency key gets this answer back.
point_transactions = Table(
    "point_transactions",
    metadata,
    Column("operator_id", String(64), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("request_digest", String(64), nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("original_transaction_id", String(128), nullable=True),
    Column("record_id", Integer, nullable=True),
    Column("campaign_id", String(32), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("points", Integer, nullable=False),
    Column("net_points", Integer, nullable=False),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("total_after", Integer, nullable=True),
    Column("decided_at", UTCDateTime, nullable=False),
    UniqueConstraint("operator_id", "transaction_id", name="uq_point_transactions_operator_tx"),
)

# Append-only (triggers refuse UPDATE and DELETE): every movement of points.
ledger = Table(
    "ledger",
    metadata,
    Column("entry_id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", Integer, nullable=False, index=True),
    Column("cap_group", String(64), nullable=False),
    Column("campaign_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("points", Integer, nullable=False),
    Column("operator_id", String(64), nullable=False, index=True),
    Column("service_id", String(64), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)


# --- what every worker and instance must agree on (issue 17) ----------------------------------

# The emulated J-LIS registry (mynahil.reference_impl.store.jlis_sql): serials as decimal text (they
# are up to 160 bits). A certificate or card is replaced at most once: ``replaces`` is unique.
jlis_certificates = Table(
    "jlis_certificates",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("card_id", String(128), nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("replaces", String(64), nullable=True, unique=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("reason", String(32), nullable=True),
    Column("not_before", UTCDateTime, nullable=True),  # None: from a file that lacked it
)

jlis_cards = Table(
    "jlis_cards",
    metadata,
    Column("card_id", String(128), primary_key=True),
    Column("person_ref", String(128), nullable=False),
    Column("applied_on", Date, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("replaces", String(128), nullable=True, unique=True),
)

# One row (id=1): the last CRL number J-LIS handed out.
jlis_crl_number = Table(
    "jlis_crl_number",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("crl_number", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# One row (id=1) once a server started with --as-of: business time ``as_of`` was the wall
# clock's ``wall_at``, so every worker and instance reads the same business time.
business_clock = Table(
    "business_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("as_of", UTCDateTime, nullable=False),
    Column("wall_at", UTCDateTime, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# What anonymous refusals may still write to the audit log, per source (audit.RefusalBudget):
# ``source`` is the budget's scope and the caller's address ("mykey:203.0.113.7").
refusal_budget = Table(
    "refusal_budget",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("window_start", UTCDateTime, nullable=False),
    Column("recorded", Integer, nullable=False),
    Column("unrecorded", Integer, nullable=False),
)
