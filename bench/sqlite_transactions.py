"""Transactions per second on SQLite: aiosqlite's worker thread against the inline connection.

    python bench/sqlite_transactions.py [--seconds 1] [--rounds 3]

Each case runs for `--seconds` on a fresh database file configured exactly as Verbal's
engine is (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, one pooled connection). Two reference
lines show where the rest of the time goes: the trivial transaction through SQLAlchemy's
synchronous ORM (its own cost, without the asyncio facade) and through the stdlib sqlite3
module alone (BEGIN IMMEDIATE / select 1 / COMMIT).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import sqlalchemy
from sqlalchemy import JSON, String, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from verbal.store import create_engine, session_factory

STALL = "longest loop stall, inserts (ms)"


class Base(DeclarativeBase):
    pass


class Row(Base):
    """Shaped like Verbal's rows (a short string, a JSON payload, a time) but the bench's own,
    so that schema changes elsewhere do not move the figures."""

    __tablename__ = "bench_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime]


async def rate(seconds: float, one: Callable[[int], Awaitable[None]]) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        for _ in range(50):
            await one(count)
            count += 1
    return count / (now - start)


async def longest_stall(seconds: float, one: Callable[[int], Awaitable[None]]) -> float:
    """Run `one` for `seconds` beside a task that notes each turn the loop gives it; return
    the longest wait between two turns, in milliseconds: how long the server was deaf."""
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await rate(seconds, one)
    task.cancel()
    return longest * 1000


async def measure(engine: AsyncEngine, seconds: float) -> dict[str, float]:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = session_factory(engine)

    async def trivial(_: int) -> None:
        async with sessions.begin() as session:
            await session.execute(text("select 1"))

    sids = itertools.count()

    async def insert(_: int) -> None:
        n = next(sids)
        async with sessions.begin() as session:
            session.add(Row(sid=f"SM{n:032d}", payload={"n": n}, created=datetime.now(UTC)))

    async def orm_select(n: int) -> None:
        async with sessions.begin() as session:
            await session.scalar(select(Row).where(Row.id == n % 1000 + 1))

    results = {
        "trivial tx (select 1)": await rate(seconds, trivial),
        "ORM insert tx": await rate(seconds, insert),
        "ORM select tx": await rate(seconds, orm_select),
    }
    async with engine.connect() as connection:

        async def bare(_: int) -> None:
            await connection.execute(text("select 1"))

        results["select 1 on an open connection"] = await rate(seconds, bare)
    results[STALL] = await longest_stall(seconds, insert)
    await engine.dispose()
    return results


def stdlib_ceiling(path: Path, seconds: float) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        db.execute("BEGIN IMMEDIATE")
        db.execute("select 1").fetchall()
        db.execute("COMMIT")
        count += 1
    db.close()
    return count / (time.perf_counter() - start)


def sqlalchemy_sync_ceiling(path: Path, seconds: float) -> float:
    """The trivial transaction through SQLAlchemy's synchronous ORM: no asyncio facade."""
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    sessions = sessionmaker(engine, expire_on_commit=False)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with sessions.begin() as session:
            session.execute(text("select 1"))
        count += 1
    engine.dispose()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="the median is shown")
    options = parser.parse_args()
    old: list[dict[str, float]] = []
    new: list[dict[str, float]] = []
    ceiling: list[float] = []
    sync: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        # Rounds alternate the engines so that a noisy neighbour slows both alike.
        for round_ in range(options.rounds):
            for inline, results in ((False, old), (True, new)):
                url = f"sqlite:///{directory}/{round_}-{inline}.db"
                engine = create_engine(url, inline_sqlite=inline)
                results.append(asyncio.run(measure(engine, options.seconds)))
            ceiling.append(stdlib_ceiling(Path(directory) / f"{round_}-raw.db", options.seconds))
            sync.append(
                sqlalchemy_sync_ceiling(Path(directory) / f"{round_}-sync.db", options.seconds)
            )
    print(f"{'transactions/s (median)':34} {'aiosqlite':>10} {'inline':>10} {'speed-up':>9}")
    for case in old[0]:
        before = median(r[case] for r in old)
        after = median(r[case] for r in new)
        if case == STALL:
            print(f"{case:34} {before:10,.1f} {after:10,.1f}")
        else:
            print(f"{case:34} {before:10,.0f} {after:10,.0f} {after / before:8.1f}x")
    print(f"{'trivial tx, sync SQLAlchemy ORM':34} {'':10} {median(sync):10,.0f}")
    print(f"{'trivial tx, stdlib sqlite3':34} {'':10} {median(ceiling):10,.0f}")


if __name__ == "__main__":
    main()
