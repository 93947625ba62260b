"""numbers, applications and scheduling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:32:44.211281
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Existing rows need a value for the new NOT NULL columns.
_POST = sa.text("'POST'")
_FALSE = sa.false()


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voice_fallback_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(
            sa.Column(
                "voice_fallback_method", sa.String(length=8), nullable=False, server_default=_POST
            )
        )
        batch_op.add_column(sa.Column("status_callback", sa.String(length=2048), nullable=True))
        batch_op.add_column(
            sa.Column(
                "status_callback_method", sa.String(length=8), nullable=False, server_default=_POST
            )
        )
        batch_op.add_column(sa.Column("sms_status_callback", sa.String(length=2048), nullable=True))
        batch_op.add_column(
            sa.Column("extra", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("number_owned", sa.Boolean(), nullable=False, server_default=_FALSE)
        )
        batch_op.add_column(
            sa.Column("deleted", sa.Boolean(), nullable=False, server_default=_FALSE)
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("own_application_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("voice_application_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_phone_numbers_voice_application_id",
            "applications",
            ["voice_application_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            "fk_phone_numbers_own_application_id", "applications", ["own_application_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_phone_numbers_own_application_id", type_="foreignkey")
        batch_op.drop_constraint("fk_phone_numbers_voice_application_id", type_="foreignkey")
        batch_op.drop_column("voice_application_id")
        batch_op.drop_column("own_application_id")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("send_at")

    with op.batch_alter_table("applications", schema=None) as batch_op:
        for column in (
            "deleted",
            "number_owned",
            "extra",
            "sms_status_callback",
            "status_callback_method",
            "status_callback",
            "voice_fallback_method",
            "voice_fallback_url",
        ):
            batch_op.drop_column(column)
