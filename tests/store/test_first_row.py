"""A hot read straight on SQLite's inline connection gives what a read session gives, and
never reads inside a transaction that another task holds open on that connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.store import create_engine, read_sessions
from verbal.store.first_row import FirstRow

METADATA = MetaData()
THINGS = Table(
    "things",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),
    Column("state", String, nullable=False),
    Column("extra", JSON),
    Column("flag", Boolean, nullable=False),
    Column("blob", LargeBinary),
    Column("created", DateTime(timezone=True), nullable=False),
)
# Literal values (a state, LIMIT) are bound parameters too, besides the caller's `name`.
BY_NAME = (
    select(THINGS, THINGS.c.extra.label("again"))
    .where((THINGS.c.name == bindparam("name")) & (THINGS.c.state == "live"))
    .order_by(THINGS.c.id.desc())
    .limit(1)
)
CREATED = datetime(2026, 12, 7, 18, 0, 1, 250_000, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'verbal.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
        await connection.execute(
            THINGS.insert(),
            [
                {
                    "name": "a",
                    "state": "live",
                    "extra": {"k": [1, "two", None]},
                    "flag": True,
                    "blob": b"\x00\xff",
                    "created": CREATED,
                },
                {
                    "name": "a",
                    "state": "gone",
                    "extra": None,
                    "flag": False,
                    "blob": None,
                    "created": CREATED,
                },
                {
                    "name": "b",
                    "state": "live",
                    "extra": None,
                    "flag": False,
                    "blob": None,
                    "created": CREATED,
                },
            ],
        )
    yield engine
    await engine.dispose()


async def through_a_session(engine: AsyncEngine, **params: str) -> Row | None:
    async with read_sessions(engine)() as session:
        return (await session.execute(BY_NAME, params)).first()


async def test_a_read_at_once_gives_what_a_session_gives(engine: AsyncEngine) -> None:
    read = FirstRow(BY_NAME, engine, read_sessions(engine))
    for name in ("a", "b"):
        expected = await through_a_session(engine, name=name)
        assert expected is not None
        row = await read(name=name)
        # Read on the connection, not through a session.
        assert not isinstance(row, Row)
        assert tuple(row) == tuple(expected)
        assert row._fields == tuple(expected._fields)
    row = await read(name="a")
    assert (row.state, row.flag, row.blob) == ("live", True, b"\x00\xff")
    assert row.extra == row.again == {"k": [1, "two", None]}
    assert row.created == CREATED.replace(tzinfo=None)  # as SQLAlchemy reads it on SQLite
    assert await read(name="nobody") is None


async def test_a_transaction_in_progress_is_never_read_into(engine: AsyncEngine) -> None:
    read = FirstRow(BY_NAME, engine, read_sessions(engine))
    await read(name="b")  # the pool's one connection is open
    inserted, release = asyncio.Event(), asyncio.Event()

    async def uncommitted() -> None:
        async with engine.connect() as connection:
            await connection.begin()
            await connection.execute(
                THINGS.insert(),
                {"name": "c", "state": "live", "flag": True, "created": CREATED},
            )
            inserted.set()
            await release.wait()
            await connection.rollback()

    holder = asyncio.create_task(uncommitted())
    await inserted.wait()
    reading = asyncio.create_task(read(name="c"))
    await asyncio.sleep(0.05)
    # The connection is in the other task's transaction: the read waits for it.
    assert not reading.done()
    release.set()
    await holder
    assert await reading is None  # rolled back: never seen
