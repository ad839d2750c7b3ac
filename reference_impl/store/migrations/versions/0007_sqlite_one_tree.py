"""SQLite keeps two hot tables in one B-tree each instead of two.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A table whose primary key is not ``INTEGER PRIMARY KEY`` is, on SQLite, a rowid table plus a
separate unique index on the key: every insert writes a page of each. A MyKey issuance wrote
13 pages to the write-ahead log, two of them only for such second trees: ``audit_log``
(``seq`` was ``BIGINT``, which SQLite does not take as the rowid) and
``certificate_bindings`` (keyed by the serial's text). ``seq`` becomes ``INTEGER`` on SQLite
(64-bit there as well) and the bindings a ``WITHOUT ROWID`` table. PostgreSQL is unchanged.

Existing data: copied as it is (the tables are rebuilt).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if not _sqlite():
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.alter_column(
            "seq", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
    with op.batch_alter_table(
        "certificate_bindings", recreate="always", table_kwargs={"sqlite_with_rowid": False}
    ):
        pass


def downgrade() -> None:
    if not _sqlite():
        return
    with op.batch_alter_table("certificate_bindings", recreate="always"):
        pass
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.alter_column(
            "seq", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )
