"""Alembic environment: migrations always run on a connection handed in by Verbal."""

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext

from verbal.store.models import Base, UTCDateTime

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `verbal db upgrade` or verbal.store.migrate()")


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    # UTCDateTime is a plain DATETIME in the database; keep model code out of migrations.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
