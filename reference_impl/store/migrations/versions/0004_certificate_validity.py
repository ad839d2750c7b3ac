"""Certificate validity on each binding: the platform knows when a holder's certificate expired.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

While the holder's certificate is expired, MyNa Point cannot be used (seed 004): a charge is
judged against the validity of the certificates bound to the holder's MyKey ID. Bindings made
before this revision have no validity recorded (NULL): the rule gives them the benefit of the
doubt (mynahil.reference_impl.points.rules.certificate_valid_at).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_bindings") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("not_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificate_bindings") as batch:
        batch.drop_column("not_after")
        batch.drop_column("not_before")
