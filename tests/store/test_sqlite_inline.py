"""SQLite through the inline connection keeps its promises: durable commits, clean rollbacks,
constraint errors as SQLAlchemy errors, and patience with another process's write lock that
does not freeze the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.store import create_engine, read_sessions, session_factory
from verbal.store import database as database_module

SCHEMA = (
    "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE children (id INTEGER PRIMARY KEY,"
    " parent_id INTEGER NOT NULL REFERENCES parents (id))",
)

# Takes the write lock on the file like the `verbal` CLI would, says so, keeps it for a while.
HOLD_WRITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO parents (name) VALUES ('from the other process')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "verbal.db"


@pytest.fixture
async def engine(path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{path}")
    async with engine.begin() as connection:
        for statement in SCHEMA:
            await connection.execute(text(statement))
    yield engine
    await engine.dispose()


def names(path: Path) -> list[str]:
    """What another process reading the file sees."""
    with closing(sqlite3.connect(path)) as db:
        return [name for (name,) in db.execute("SELECT name FROM parents ORDER BY id")]


def wal_size(path: Path) -> int:
    return path.with_name(f"{path.name}-wal").stat().st_size


@asynccontextmanager
async def write_lock_held_elsewhere(path: Path, seconds: float) -> AsyncIterator[None]:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_WRITE_LOCK,
        str(path),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"locked\n"
        yield
    finally:
        assert await asyncio.wait_for(holder.wait(), 20) == 0


class Ticker:
    """A task that notes every turn the event loop gives it."""

    def __init__(self, interval: float = 0.0) -> None:
        self.times: list[float] = []
        self._interval = interval
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.times.append(time.monotonic())
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def test_a_commit_survives_reopening_the_file(engine: AsyncEngine, path: Path) -> None:
    async with session_factory(engine).begin() as session:
        await session.execute(text("INSERT INTO parents (name) VALUES ('kept')"))
    await engine.dispose()

    assert names(path) == ["kept"]
    reopened = create_engine(f"sqlite:///{path}")
    try:
        async with reopened.connect() as connection:
            rows = await connection.execute(text("SELECT name FROM parents"))
            assert rows.scalars().all() == ["kept"]
    finally:
        await reopened.dispose()


async def test_a_rollback_leaves_nothing(engine: AsyncEngine, path: Path) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with session_factory(engine).begin() as session:
            await session.execute(text("INSERT INTO parents (name) VALUES ('dropped')"))
            raise Abandon

    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM parents"))).scalar() == 0
    assert names(path) == []


async def test_constraint_violations_are_sqlalchemy_integrity_errors(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(text("INSERT INTO parents (name) VALUES ('one')"))

    with pytest.raises(exc.IntegrityError, match="UNIQUE"):
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO parents (name) VALUES ('one')"))
    with pytest.raises(exc.IntegrityError, match="FOREIGN KEY"):  # foreign_keys=ON holds
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO children (parent_id) VALUES (999)"))

    async with sessions.begin() as session:  # the connection is still good afterwards
        await session.execute(text("INSERT INTO parents (name) VALUES ('two')"))
        rows = await session.execute(text("SELECT name FROM parents ORDER BY id"))
        assert rows.scalars().all() == ["one", "two"]


async def test_the_connection_is_set_up_for_one_writer(engine: AsyncEngine, path: Path) -> None:
    async with session_factory(engine).begin() as session:
        pragma = {
            name: (await session.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}
        # Having only read, the transaction already holds the write lock (BEGIN IMMEDIATE).
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with closing(other), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")


async def test_a_read_session_leaves_the_write_lock_to_writers(
    engine: AsyncEngine, path: Path
) -> None:
    async with session_factory(engine).begin() as session:
        await session.execute(text("INSERT INTO parents (name) VALUES ('first')"))
    async with read_sessions(engine)() as session:
        assert (await session.execute(text("SELECT name FROM parents"))).scalars().all() == [
            "first"
        ]
        # Having read, the transaction (BEGIN DEFERRED) holds no write lock: another writer
        # takes it and commits while the read is still open (the test above: a session of
        # `session_factory` would hold it).
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with closing(other):
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO parents (name) VALUES ('meanwhile')")
            other.execute("COMMIT")
        # The read's snapshot is the one it began with.
        assert (await session.execute(text("SELECT count(*) FROM parents"))).scalar() == 1
    assert names(path) == ["first", "meanwhile"]


async def test_a_write_waits_for_another_process_without_blocking_the_loop(
    engine: AsyncEngine, path: Path
) -> None:
    async with write_lock_held_elsewhere(path, seconds=1.0):
        ticker = Ticker(interval=0.005)
        started = time.monotonic()
        async with session_factory(engine).begin() as session:
            await session.execute(text("INSERT INTO parents (name) VALUES ('ours')"))
        waited = time.monotonic() - started
        await ticker.stop()

    assert waited > 0.5, "the write should have waited for the other process's lock"
    assert names(path) == ["from the other process", "ours"]
    # SQLite's own busy handler would have frozen the loop for the whole wait: no tick in it.
    # (Counted, not timed: a busy machine stretches the gaps, not the count to zero.)
    assert sum(started < tick < started + waited for tick in ticker.times) >= 5


async def test_a_lock_held_past_the_busy_timeout_fails_as_locked(
    engine: AsyncEngine, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    await engine.dispose()  # the next connection takes the shorter patience

    sessions = session_factory(engine)
    async with write_lock_held_elsewhere(path, seconds=2.0):
        started = time.monotonic()
        with pytest.raises(exc.OperationalError, match="database is locked"):
            async with sessions.begin() as session:
                await session.execute(text("INSERT INTO parents (name) VALUES ('too late')"))
        # It gave up while the lock was still held (or the write would have gone through).
        assert time.monotonic() - started > 0.15

    async with sessions.begin() as session:  # once the lock is gone, writes go through
        await session.execute(text("INSERT INTO parents (name) VALUES ('later')"))
    assert names(path) == ["from the other process", "later"]


async def test_a_run_of_transactions_lets_other_tasks_run(engine: AsyncEngine) -> None:
    ticker = Ticker()
    async with session_factory(engine)() as session:
        for n in range(200):
            async with session.begin():
                await session.execute(text("INSERT INTO parents (name) VALUES (:n)"), {"n": n})
    await ticker.stop()
    assert len(ticker.times) >= 150


async def test_the_write_ahead_log_stays_small_under_a_run_of_writes(
    engine: AsyncEngine, path: Path
) -> None:
    """Checkpoints still happen, off the loop, while writes keep coming."""
    sessions = session_factory(engine)
    for n in range(3_000):  # about 24 MB of WAL if nothing were ever checkpointed
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO parents (name) VALUES (:n)"), {"n": str(n)})
    assert wal_size(path) < 8_000_000
    assert len(names(path)) == 3_000
