"""Everything workers and instances share lives in the database (issue 17): the emulated
J-LIS registry (certificates, cards, the CRL number), the business clock under ``--as-of``
and the budget of anonymous refusals.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Existing data: none moves. A ``registry.json`` beside the CA stays readable by the platform
(the offline issuance desk, ``mynahil card new``, writes it); what the platform itself
records from now on is kept here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jlis_certificates",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("card_id", sa.String(128), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaces", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("serial", name="pk_jlis_certificates"),
        sa.UniqueConstraint("replaces", name="uq_jlis_certificates_replaces"),
    )
    op.create_table(
        "jlis_cards",
        sa.Column("card_id", sa.String(128), nullable=False),
        sa.Column("person_ref", sa.String(128), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("replaces", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("card_id", name="pk_jlis_cards"),
        sa.UniqueConstraint("replaces", name="uq_jlis_cards_replaces"),
    )
    crl = op.create_table(
        "jlis_crl_number",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_jlis_crl_number_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_jlis_crl_number"),
    )
    op.bulk_insert(crl, [{"id": 1, "crl_number": 0}])
    op.create_table(
        "business_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wall_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_business_clock_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_business_clock"),
    )
    op.create_table(
        "refusal_budget",
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded", sa.Integer(), nullable=False),
        sa.Column("unrecorded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_refusal_budget"),
    )


def downgrade() -> None:
    for table in (
        "refusal_budget", "business_clock", "jlis_crl_number", "jlis_cards", "jlis_certificates"
    ):  # fmt: skip
        op.drop_table(table)
