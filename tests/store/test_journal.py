"""The journal (verbal/store/journal.py) on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from verbal.store import create_engine
from verbal.store.journal import Journal, Statement, backend_for

INSERT = Statement("INSERT INTO notes (value) VALUES (:value)", order=1)


async def test_an_awaiter_cancelled_before_the_commit_breaks_nothing(tmp_path: Path) -> None:
    # Every write of a tick shares one future; a cancelled awaiter cancels it. The tick must
    # still be written and closing wait for it without error (setting the cancelled future's
    # result raised InvalidStateError in the flush: seen as a carrier's bind stopped while a
    # receipt's handler awaited its commit).
    path = tmp_path / "journal.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (value INTEGER)"))
    journal = Journal(backend_for(engine))
    try:

        async def write_and_wait() -> None:
            await journal.write(INSERT, {"value": 1})

        waiter = asyncio.create_task(write_and_wait())
        await asyncio.sleep(0)  # it waits; the tick is not written yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await journal.close()  # waits for the flush, which raised before
    finally:
        await engine.dispose()
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT value FROM notes")] == [1]


STAMP = Statement("INSERT INTO stamps (at) VALUES (:at)", order=1, times=("at",))


async def test_ticks_are_written_while_a_session_holds_a_transaction_and_after(
    tmp_path: Path,
) -> None:
    # A tick runs at once when the connection is free; while a session's transaction holds
    # it, the tick waits for it (never writing inside someone else's transaction) and lands
    # after that transaction's own rows.
    path = tmp_path / "journal.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (value INTEGER)"))
    journal = Journal(backend_for(engine))
    try:
        await journal.write(INSERT, {"value": 1})
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes (value) VALUES (2)"))
            written = journal.write(INSERT, {"value": 3})
            await asyncio.sleep(0.05)
            assert not written.done()
        await written
        assert journal.stats.transactions == 2
    finally:
        await journal.close()
        await engine.dispose()
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT value FROM notes ORDER BY rowid")] == [1, 2, 3]


async def test_times_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    # Aware datetimes of any zone become naive UTC text with microseconds, what SQLAlchemy's
    # DateTime columns hold, so that rows of either writer compare and sort together.
    path = tmp_path / "journal.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE stamps (at TEXT)"))
    journal = Journal(backend_for(engine))
    paris = timezone(timedelta(hours=1))
    try:
        await journal.write(STAMP, {"at": datetime(2026, 12, 7, 18, 30, 5, 120, tzinfo=paris)})
        await journal.write(STAMP, {"at": datetime(2026, 12, 7, 17, 0, tzinfo=UTC)})
        await journal.write(STAMP, {"at": None})
    finally:
        await journal.close()
        await engine.dispose()
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT at FROM stamps ORDER BY rowid")] == [
            "2026-12-07 17:30:05.000120",
            "2026-12-07 17:00:00.000000",
            None,
        ]
