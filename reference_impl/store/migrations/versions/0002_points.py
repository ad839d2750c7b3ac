"""The point system: operators, services, applications, transactions, totals and the ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Frozen like 0001. The ledger is append-only in the database itself: triggers refuse UPDATE
and DELETE on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("verify_url", sa.Text(), nullable=True),
        sa.Column("feed_seq", sa.BigInteger(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("operator_id", name="pk_operators"),
    )
    op.create_table(
        "payment_services",
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("service_id", name="pk_payment_services"),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.operator_id"],
            name="fk_payment_services_operator_id_operators",
        ),
    )
    op.create_table(
        "operator_nonces",
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        _time("seen_at"),
        sa.PrimaryKeyConstraint("operator_id", "nonce", name="pk_operator_nonces"),
    )
    op.create_index("ix_operator_nonces_seen_at", "operator_nonces", ["seen_at"])
    op.create_table(
        "linked_accounts",
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        _time("linked_at"),
        sa.PrimaryKeyConstraint("service_id", "account_id", name="pk_linked_accounts"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["mykeys.record_id"], name="fk_linked_accounts_record_id_mykeys"
        ),
    )
    op.create_table(
        "applications",
        sa.Column("application_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        _time("applied_at"),
        sa.Column("card_applied_on", sa.Date(), nullable=False),
        sa.Column("feed_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("application_id", name="pk_applications"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["mykeys.record_id"], name="fk_applications_record_id_mykeys"
        ),
        sa.UniqueConstraint("campaign_id", "record_id", name="uq_applications_campaign_record"),
        sa.UniqueConstraint("operator_id", "feed_seq", name="uq_applications_operator_feed"),
    )
    op.create_table(
        "point_totals",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("cap_group", sa.String(64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "cap_group", name="pk_point_totals"),
        sa.CheckConstraint("points >= 0", name="ck_point_totals_not_negative"),
    )
    op.create_table(
        "point_transactions",
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _time("occurred_at"),
        sa.Column("original_transaction_id", sa.String(128), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("net_points", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("total_after", sa.Integer(), nullable=True),
        _time("decided_at"),
        sa.PrimaryKeyConstraint("operator_id", "idempotency_key", name="pk_point_transactions"),
        sa.UniqueConstraint(
            "operator_id", "transaction_id", name="uq_point_transactions_operator_tx"
        ),
    )
    op.create_table(
        "ledger",
        sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("cap_group", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("entry_id", name="pk_ledger"),
    )
    op.create_index("ix_ledger_record_id", "ledger", ["record_id"])
    op.create_index("ix_ledger_operator_id", "ledger", ["operator_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_no_{event.lower()} BEFORE {event} ON ledger "
                "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
            )


def downgrade() -> None:
    for table in (
        "ledger",
        "point_transactions",
        "point_totals",
        "applications",
        "linked_accounts",
        "operator_nonces",
        "payment_services",
        "operators",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
