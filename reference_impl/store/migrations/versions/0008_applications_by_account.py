"""Applications are found by payment account: an index on (service_id, account_id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Every batch of reports looks up the applications of its accounts. Without this index each
batch read the whole ``applications`` table (one row per person and round: tens of millions
in the scheme), on SQLite and PostgreSQL alike.

Existing data: none changes; the index is built from the rows there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_applications_service_id", "applications", ["service_id", "account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_applications_service_id", table_name="applications")
