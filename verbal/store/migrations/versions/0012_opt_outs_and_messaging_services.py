"""opt-outs and Messaging Services

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:20:00

Issue 20. A handset that texts STOP (or a synonym) to a number is not sent to from that
number until it texts START (`opt_outs`, kept by `verbal/messaging/optouts.py`). A Messaging
Service is a pool of an account's numbers that sends pick a sender from
(`messaging_services`, `messaging_service_numbers`); a message records the service it was
sent through.
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
    op.create_table(
        "messaging_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("friendly_name", sa.String(length=64), nullable=False),
        sa.Column("inbound_request_url", sa.String(length=2048), nullable=True),
        sa.Column("inbound_method", sa.String(length=8), nullable=False),
        sa.Column("fallback_url", sa.String(length=2048), nullable=True),
        sa.Column("fallback_method", sa.String(length=8), nullable=False),
        sa.Column("status_callback", sa.String(length=2048), nullable=True),
        sa.Column("sticky_sender", sa.Boolean(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("date_created", sa.DateTime(), nullable=False),
        sa.Column("date_updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sid"),
    )
    op.create_index(
        "ix_messaging_services_account_id", "messaging_services", ["account_id"], unique=False
    )
    op.create_table(
        "messaging_service_numbers",
        sa.Column("phone_number_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("date_created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["phone_number_id"], ["phone_numbers.id"]),
        sa.ForeignKeyConstraint(["service_id"], ["messaging_services.id"]),
        sa.PrimaryKeyConstraint("phone_number_id"),
    )
    op.create_index(
        "ix_messaging_service_numbers_service_id",
        "messaging_service_numbers",
        ["service_id"],
        unique=False,
    )
    op.add_column(
        "messages", sa.Column("messaging_service_sid", sa.String(length=34), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("messages", "messaging_service_sid")
    op.drop_index("ix_messaging_service_numbers_service_id", table_name="messaging_service_numbers")
    op.drop_table("messaging_service_numbers")
    op.drop_index("ix_messaging_services_account_id", table_name="messaging_services")
    op.drop_table("messaging_services")
    op.drop_table("opt_outs")
