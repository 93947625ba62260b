"""calls, and sandbox rules for calls

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:40:00

Issue 18 (voice, part 1). A call is a row of `calls`: who called whom, its direction, its
parent (the call that placed it, for a Tropo `message` or `call` on the voice channel), its
state and when it reached each, how long it lasted and why it ended. The rows are written
through the journal (`verbal/voice/records.py`), guarded so that a final state is written
once. A session on a call names it (`sessions.call_sid`); a call placed from a number that
runs no app has a session of no application. Sandbox rules gain a `channel`: `text` rules
script messages, `voice` rules what a handset does when called (answer, ring out, busy,
decline).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("session_sid", sa.String(length=34), nullable=True),
        sa.Column("parent_sid", sa.String(length=34), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("from_number", sa.String(length=64), nullable=False),
        sa.Column("to_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dialect", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("status_callback", sa.String(length=2048), nullable=True),
        sa.Column("status_callback_method", sa.String(length=8), nullable=False),
        sa.Column("status_callback_events", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("end_cause", sa.String(length=64), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("date_created", sa.DateTime(), nullable=False),
        sa.Column("date_updated", sa.DateTime(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sid"),
    )
    op.create_index("ix_calls_account", "calls", ["account_id", "id"], unique=False)
    op.create_index("ix_calls_parent_sid", "calls", ["parent_sid"], unique=False)
    op.create_index("ix_calls_live", "calls", ["status", "node"], unique=False)
    op.add_column("sessions", sa.Column("call_sid", sa.String(length=34), nullable=True))
    # A call placed through a Calls API from a number with no app runs a session of none.
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=True)
    op.add_column(
        "sandbox_rules",
        sa.Column("channel", sa.String(length=8), nullable=False, server_default="text"),
    )


def downgrade() -> None:
    op.drop_column("sandbox_rules", "channel")
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=False)
    op.drop_column("sessions", "call_sid")
    op.drop_index("ix_calls_live", table_name="calls")
    op.drop_index("ix_calls_parent_sid", table_name="calls")
    op.drop_index("ix_calls_account", table_name="calls")
    op.drop_table("calls")
