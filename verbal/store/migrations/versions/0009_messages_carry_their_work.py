"""messages carry their own work: the journal's outbox columns

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:00:00

The pipeline no longer queues a job row per step of a message (issue 16). The message row
says what is left to do (`work_at`), who is doing it (`lease_owner`, `lease_expires`, `lane`),
how far it has got (`rank`) and which status callbacks are settled (`event_seq`,
`callback_seq`, `callback_cursor` against `message_events.seq`). Message ids are reserved a
block at a time from `id_blocks`.

Existing messages are carried over: their timeline entries are numbered, their callbacks
count as settled (webhook jobs already queued still run), and those still to be submitted
get a `work_at`, replacing their submit jobs.
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANKS = {
    "accepted": 0,
    "receiving": 0,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
}


def upgrade() -> None:
    zero = sa.text("0")
    op.add_column("messages", sa.Column("rank", sa.Integer(), nullable=False, server_default=zero))
    for name in ("event_seq", "callback_seq", "callback_cursor"):
        op.add_column(
            "messages", sa.Column(name, sa.Integer(), nullable=False, server_default=zero)
        )
    op.add_column("messages", sa.Column("work_at", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("lease_owner", sa.String(length=128), nullable=True))
    op.add_column("messages", sa.Column("lease_expires", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("lane", sa.String(length=64), nullable=True))
    op.create_index("ix_messages_work", "messages", ["work_at"])
    op.add_column(
        "message_events", sa.Column("seq", sa.Integer(), nullable=False, server_default=zero)
    )
    op.add_column(
        "message_events",
        sa.Column("callback", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "id_blocks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.execute(
        "UPDATE message_events SET seq = (SELECT count(*) FROM message_events AS earlier "
        "WHERE earlier.message_id = message_events.message_id AND earlier.id <= message_events.id)"
    )
    op.create_index("ix_message_events_seq", "message_events", ["message_id", "seq"], unique=True)
    op.execute(
        "UPDATE messages SET event_seq = (SELECT count(*) FROM message_events "
        "WHERE message_events.message_id = messages.id)"
    )
    op.execute("UPDATE messages SET callback_seq = event_seq, callback_cursor = event_seq")
    for status, rank in RANKS.items():
        op.execute(f"UPDATE messages SET rank = {rank} WHERE status = '{status}'")
    op.execute(
        f"UPDATE messages SET rank = 9 WHERE status NOT IN ({', '.join(repr(s) for s in RANKS)})"
    )
    now = time.time()
    op.execute(
        f"UPDATE messages SET work_at = {now} "
        "WHERE status IN ('accepted', 'queued', 'sending', 'scheduled')"
    )
    op.execute("DELETE FROM jobs WHERE kind LIKE 'submit%'")
    op.execute(
        "INSERT INTO id_blocks (name, next_id) "
        "SELECT 'messages', coalesce(max(id), 0) + 1 FROM messages"
    )


def downgrade() -> None:
    op.drop_table("id_blocks")
    op.drop_index("ix_message_events_seq", table_name="message_events")
    with op.batch_alter_table("message_events") as batch:
        batch.drop_column("callback")
        batch.drop_column("seq")
    op.drop_index("ix_messages_work", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for name in (
            "lane",
            "lease_expires",
            "lease_owner",
            "work_at",
            "callback_cursor",
            "callback_seq",
            "event_seq",
            "rank",
        ):
            batch.drop_column(name)
