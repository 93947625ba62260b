"""SMPP carriers: the ids of accepted message parts, and the binds workers report

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smpp_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("message_sid", sa.String(length=34), nullable=False),
        sa.Column("part_id", sa.String(length=65), nullable=False),
        sa.Column("id_decimal", sa.String(length=80), nullable=True),
        sa.Column("id_hex", sa.String(length=80), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_smpp_parts_id", "smpp_parts", ["carrier", "part_id"], unique=True)
    op.create_index("ix_smpp_parts_message", "smpp_parts", ["message_sid"])
    op.create_index("ix_smpp_parts_decimal", "smpp_parts", ["carrier", "id_decimal"])
    op.create_index("ix_smpp_parts_hex", "smpp_parts", ["carrier", "id_hex"])
    op.create_table(
        "carrier_binds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("bind", sa.String(length=80), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("bound_since", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("last_error_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_carrier_binds_owner", "carrier_binds", ["owner", "bind"], unique=True)


def downgrade() -> None:
    op.drop_table("carrier_binds")
    op.drop_table("smpp_parts")
