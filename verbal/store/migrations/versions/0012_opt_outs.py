"""opt-outs: recipients who asked one of an account's numbers to stop

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:20:00

A handset that texts STOP (or a synonym) to a number is not sent to from that number until
it texts START (issue 20); `verbal/messaging/optouts.py` keeps these rows, cached per account.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opt_outs",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("date_created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "sender", "recipient"),
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
