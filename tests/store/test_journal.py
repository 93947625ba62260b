"""The journal (verbal/store/journal.py) on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
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
