"""notify workers of new jobs (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:00:00

Every statement that adds jobs sends a NOTIFY on channel `verbal_jobs`, delivered when its
transaction commits, so idle workers on any node wake at once instead of polling. SQLite
has one process, which wakes its own workers in memory; nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "verbal_jobs"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION verbal_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER jobs_notify AFTER INSERT ON jobs "
        "FOR EACH STATEMENT EXECUTE FUNCTION verbal_notify_jobs()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER jobs_notify ON jobs")
    op.execute("DROP FUNCTION verbal_notify_jobs()")
