"""The person: caps, the single choice of service and the bonuses belong to a person, not to
one MyKey ID (issue 13).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

``persons`` holds one row per person the platform knows, with J-LIS's opaque person
reference (never the My Number). Every MyKey record names its person; applications are
unique per (campaign, person); point totals are kept per (person, cap group).

Existing data: each existing MyKey record becomes its own person, with ``person_id`` equal to
its ``record_id`` and no person reference yet (NULL): its totals and applications keep their
values unchanged. Such a legacy person is not joined to a later MyKey ID of the same holder
(the platform never asked J-LIS about it); records created from now on are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("person_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name="pk_persons"),
        sa.UniqueConstraint("person_ref", name="uq_persons_person_ref"),
    )
    op.execute(
        "INSERT INTO persons (person_id, person_ref, created_at) "
        "SELECT record_id, NULL, created_at FROM mykeys"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('persons', 'person_id'), "
            "COALESCE((SELECT MAX(person_id) FROM persons), 0) + 1, false)"
        )
    op.add_column("mykeys", sa.Column("person_id", sa.Integer(), nullable=True))
    op.execute("UPDATE mykeys SET person_id = record_id")
    op.create_index("ix_mykeys_person_id", "mykeys", ["person_id"])

    op.add_column("applications", sa.Column("person_id", sa.Integer(), nullable=True))
    op.execute("UPDATE applications SET person_id = record_id")
    with op.batch_alter_table("applications") as batch:
        batch.alter_column("person_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint("uq_applications_campaign_record", type_="unique")
        batch.create_unique_constraint(
            "uq_applications_campaign_person", ["campaign_id", "person_id"]
        )

    with op.batch_alter_table("point_totals") as batch:
        batch.alter_column("record_id", new_column_name="person_id", existing_type=sa.Integer())


def downgrade() -> None:
    with op.batch_alter_table("point_totals") as batch:
        batch.alter_column("person_id", new_column_name="record_id", existing_type=sa.Integer())
    with op.batch_alter_table("applications") as batch:
        batch.drop_constraint("uq_applications_campaign_person", type_="unique")
        batch.create_unique_constraint(
            "uq_applications_campaign_record", ["campaign_id", "record_id"]
        )
        batch.drop_column("person_id")
    op.drop_index("ix_mykeys_person_id", "mykeys")
    with op.batch_alter_table("mykeys") as batch:
        batch.drop_column("person_id")
    op.drop_table("persons")
