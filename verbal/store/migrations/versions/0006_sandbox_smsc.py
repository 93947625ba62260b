"""sandbox SMSC: parts of long messages, and deliver_sm owed to ESMEs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smsc_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("source_addr", sa.String(length=65), nullable=False),
        sa.Column("destination_addr", sa.String(length=65), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=65), nullable=False),
        sa.Column("pdu", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index(
        "ix_smsc_parts_group",
        "smsc_parts",
        ["system_id", "source_addr", "destination_addr", "reference"],
    )
    op.create_table(
        "smsc_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("pdu", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", sa.Float(), nullable=False),
        sa.Column("leased_until", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_smsc_outbox_due", "smsc_outbox", ["system_id", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_smsc_outbox_due", table_name="smsc_outbox")
    op.drop_table("smsc_outbox")
    op.drop_index("ix_smsc_parts_group", table_name="smsc_parts")
    op.drop_table("smsc_parts")
