"""conversation cookies: what apps set, kept per account, app number and handset

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:30:00

Twilio keeps the cookies an app sets per conversation for four hours and sends them back
with the conversation's next requests (issue 17); Verbal keeps them here, one row per
conversation (verbal/webhooks/conversations.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_cookies",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("app_number", sa.String(length=64), nullable=False),
        sa.Column("handset", sa.String(length=64), nullable=False),
        sa.Column("cookies", sa.Text(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "app_number", "handset"),
    )
    op.create_index(
        "ix_conversation_cookies_expires", "conversation_cookies", ["expires"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_cookies_expires", table_name="conversation_cookies")
    op.drop_table("conversation_cookies")
