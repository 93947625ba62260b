"""opt-out replies per account, and a service's UseInboundWebhookOnNumber

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 17:30:00

Issue 20's second part. An account may change the replies to STOP, START and HELP, or
switch them off (`accounts.opt_out_reply`, `opt_in_reply`, `help_reply`: NULL is the
default reply, an empty text is none). A Messaging Service answers texts to its numbers
with its own inbound request URL unless it defers to the numbers' own apps
(`messaging_services.use_inbound_webhook_on_number`, Twilio's UseInboundWebhookOnNumber).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPLIES = ("opt_out_reply", "opt_in_reply", "help_reply")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for name in _REPLIES:
            batch_op.add_column(sa.Column(name, sa.String(length=1600), nullable=True))
    with op.batch_alter_table("messaging_services", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "use_inbound_webhook_on_number",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("messaging_services", schema=None) as batch_op:
        batch_op.drop_column("use_inbound_webhook_on_number")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for name in reversed(_REPLIES):
            batch_op.drop_column(name)
