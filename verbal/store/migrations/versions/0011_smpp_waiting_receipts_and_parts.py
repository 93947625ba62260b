"""SMPP carriers: receipts not matched yet and parts of long texts not joined yet, stored

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:00:00

Both used to wait in memory after the SMSC had been told ESME_ROK, so a crash lost them
(issue 19): now they are answered once these rows have committed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smpp_waiting_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=65), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(length=512), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_smpp_waiting_receipts_id", "smpp_waiting_receipts", ["carrier", "receipt_id"]
    )
    op.create_table(
        "smpp_inbound_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("alphabet", sa.String(length=16), nullable=True),
        sa.Column("user_data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_smpp_inbound_parts_key",
        "smpp_inbound_parts",
        ["carrier", "sender", "recipient", "reference", "total", "sequence"],
    )


def downgrade() -> None:
    op.drop_table("smpp_inbound_parts")
    op.drop_table("smpp_waiting_receipts")
