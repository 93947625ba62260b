"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from verbal.store import create_engine, migrate
from verbal.store.models import Base


async def test_migrations_match_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await migrate(engine)  # applying again on a current schema is a no-op

        def diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)

        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_nodes_starting_together_migrate_once(postgres_url: str) -> None:
    """Several nodes started at once on an empty PostgreSQL database: one migrates, the
    others wait for it and find nothing to do (without the lock they deadlock or fail)."""
    engines = [create_engine(postgres_url) for _ in range(4)]
    try:
        await asyncio.wait_for(asyncio.gather(*(migrate(e) for e in engines)), timeout=60)
        async with engines[0].connect() as connection:
            versions = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).all()
    finally:
        for engine in engines:
            await engine.dispose()
    assert len(versions) == 1
