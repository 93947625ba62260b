"""Group commit on SQLite: concurrent transactions share a commit, and keep their meaning.

A unit of work that raises must undo only its own writes, a unit's block must not return
before its writes are committed, and a failed commit must reach every unit that shared it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.store import create_engine, migrate, session_factory
from verbal.store.group_commit import GroupCommitSessions
from verbal.store.models import SandboxRule


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncEngine:
    engine = create_engine(sqlite_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


def rule(pattern: str) -> SandboxRule:
    return SandboxRule(account_sid="AC1", pattern=pattern, outcome="deliver")


def count_commits(engine: AsyncEngine) -> list[int]:
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _connection: commits.append(1))
    return commits


async def stored_patterns(path: Path) -> set[str]:
    # Another connection, so only what was committed counts.
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT pattern FROM sandbox_rules")}


async def test_concurrent_units_share_one_commit(engine: AsyncEngine, tmp_path: Path) -> None:
    sessions = session_factory(engine, group_commit=64)
    assert isinstance(sessions, GroupCommitSessions)
    commits = count_commits(engine)

    async def unit(n: int) -> None:
        async with sessions.begin() as session:
            session.add(rule(f"+1555{n:04d}"))
            await session.flush()

    await asyncio.gather(*(unit(n) for n in range(50)))

    assert len(await stored_patterns(tmp_path / "verbal.db")) == 50
    # All fifty wait for their turn while the first runs: they share its transaction.
    assert len(commits) == 1


async def test_a_failing_unit_undoes_only_its_own_writes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = session_factory(engine, group_commit=64)

    async def unit(n: int) -> None:
        async with sessions.begin() as session:
            session.add(rule(f"+1555{n:04d}"))
            await session.flush()
            if n % 3 == 0:
                raise ValueError(f"unit {n} refused")

    results = await asyncio.gather(*(unit(n) for n in range(30)), return_exceptions=True)

    refused = {n for n, result in enumerate(results) if isinstance(result, ValueError)}
    assert refused == {n for n in range(30) if n % 3 == 0}
    assert await stored_patterns(tmp_path / "verbal.db") == {
        f"+1555{n:04d}" for n in range(30) if n not in refused
    }


async def test_a_unit_returns_only_once_its_writes_are_committed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = session_factory(engine, group_commit=64)
    seen_after_return: list[bool] = []

    async def unit(n: int) -> None:
        async with sessions.begin() as session:
            session.add(rule(f"+1555{n:04d}"))
            await asyncio.sleep(0)  # let the others queue up behind this one
        seen_after_return.append(f"+1555{n:04d}" in await stored_patterns(tmp_path / "verbal.db"))

    await asyncio.gather(*(unit(n) for n in range(20)))

    assert seen_after_return == [True] * 20


async def test_a_failed_commit_reaches_every_unit_that_shared_it(engine: AsyncEngine) -> None:
    sessions = session_factory(engine, group_commit=64)

    def refuse(_connection: object) -> None:
        raise RuntimeError("disk full")

    event.listen(engine.sync_engine, "commit", refuse)

    async def unit(n: int) -> None:
        async with sessions.begin() as session:
            session.add(rule(f"+1555{n:04d}"))

    results = await asyncio.gather(*(unit(n) for n in range(10)), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)

    event.remove(engine.sync_engine, "commit", refuse)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SandboxRule)) == 0
    # The connection was handed back: the next unit commits.
    async with sessions.begin() as session:
        session.add(rule("+15559999"))
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SandboxRule)) == 1


async def test_a_cancelled_unit_leaves_the_others_committing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = session_factory(engine, group_commit=64)
    started = asyncio.Event()

    async def slow() -> None:
        async with sessions.begin() as session:
            session.add(rule("+15550000"))
            started.set()
            await asyncio.sleep(30)

    async def unit(n: int) -> None:
        async with sessions.begin() as session:
            session.add(rule(f"+1555{n:04d}"))

    victim = asyncio.create_task(slow())
    await started.wait()
    others = [asyncio.create_task(unit(n)) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    victim.cancel()
    await asyncio.wait_for(asyncio.gather(*others), 5)

    assert await stored_patterns(tmp_path / "verbal.db") == {f"+1555{n:04d}" for n in range(1, 6)}


def test_postgresql_commits_each_transaction_on_its_own() -> None:
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
    assert not isinstance(session_factory(engine), GroupCommitSessions)
