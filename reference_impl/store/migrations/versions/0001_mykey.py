"""The MyKey platform: challenges, MyKey IDs, certificate bindings, sessions, audit log.

Revision ID: 0001
Revises:
Create Date: 2024-05-01

Frozen: it spells the schema out instead of importing ``tables.py``, so later changes to the
metadata need a new revision (a test compares the migrated schema with the metadata).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64  # mynahil.reference_impl.audit.GENESIS, copied so this revision never changes


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("challenge_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("challenge_id", name="pk_challenges"),
    )
    op.create_table(
        "mykeys",
        sa.Column("record_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mykey_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _time("created_at"),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("password_failures", sa.Integer(), nullable=False),
        _time("locked_until", nullable=True),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("record_id", name="pk_mykeys"),
        sa.UniqueConstraint("mykey_id", name="uq_mykeys_mykey_id"),
    )
    op.create_table(
        "certificate_bindings",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        _time("bound_at"),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["mykeys.record_id"],
            name="fk_certificate_bindings_record_id_mykeys",
        ),
        sa.PrimaryKeyConstraint("serial", name="pk_certificate_bindings"),
    )
    op.create_index("ix_certificate_bindings_record_id", "certificate_bindings", ["record_id"])
    op.create_table(
        "retired_ids",
        sa.Column("mykey_id", sa.String(32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        _time("retired_at"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["mykeys.record_id"], name="fk_retired_ids_record_id_mykeys"
        ),
        sa.PrimaryKeyConstraint("mykey_id", name="pk_retired_ids"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["mykeys.record_id"], name="fk_sessions_record_id_mykeys"
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
    )
    op.create_index("ix_sessions_record_id", "sessions", ["record_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        _time("at"),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_log",
        "sessions",
        "retired_ids",
        "certificate_bindings",
        "mykeys",
        "challenges",
    ):
        op.drop_table(table)
