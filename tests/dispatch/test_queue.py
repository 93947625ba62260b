"""The durable job queue on both databases: claims, leases, ordering, retries."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.dispatch.queue import JobQueue
from verbal.store import create_engine, migrate, session_factory

KINDS = ("test",)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(database_url: str) -> AsyncEngine:
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


def queue(engine: AsyncEngine, owner: str, clock: Clock, lease: float = 30.0) -> JobQueue:
    return JobQueue(
        session_factory(engine),
        owner=owner,
        lease_seconds=lease,
        skip_locked=engine.dialect.name == "postgresql",
        clock=clock,
    )


async def enqueue(q: JobQueue, engine: AsyncEngine, *jobs: dict, **options: object) -> None:
    async with session_factory(engine).begin() as session:
        for payload in jobs:
            await q.enqueue(session, "test", payload, **options)  # type: ignore[arg-type]


async def test_a_job_is_claimed_once_until_its_lease_runs_out(engine: AsyncEngine) -> None:
    clock = Clock()
    one, two = queue(engine, "one", clock), queue(engine, "two", clock)
    await enqueue(one, engine, {"n": 1})
    [job] = await one.claim(10, KINDS)
    assert (job.payload, job.attempts) == ({"n": 1}, 1)
    assert await two.claim(10, KINDS) == []
    clock.now += 31  # the first worker died: its lease expires and another takes over
    [again] = await two.claim(10, KINDS)
    assert (again.id, again.attempts) == (job.id, 2)
    async with session_factory(engine).begin() as session:
        await one.finish(session, job)  # the dead worker's late finish must not count
    async with session_factory(engine).begin() as session:
        await two.finish(session, again)
    assert await one.depth() == 0


async def test_jobs_with_an_ordering_key_run_one_at_a_time_in_order(engine: AsyncEngine) -> None:
    clock = Clock()
    q = queue(engine, "w", clock)
    await enqueue(q, engine, {"n": 1}, {"n": 2}, ordering_key="SM1")
    await enqueue(q, engine, {"n": 3}, ordering_key="SM2")
    await enqueue(q, engine, {"n": 4})
    claimed = await q.claim(10, KINDS)
    assert sorted(j.payload["n"] for j in claimed) == [1, 3, 4]
    first = next(j for j in claimed if j.payload["n"] == 1)
    async with session_factory(engine).begin() as session:
        await q.reschedule(session, first, 5.0, "receiver said 500")
    assert await q.claim(10, KINDS) == []  # n=2 waits behind the retrying n=1
    clock.now += 5
    [retry] = await q.claim(10, KINDS)
    assert retry.payload["n"] == 1 and retry.attempts == 2
    async with session_factory(engine).begin() as session:
        await q.finish(session, retry)
    [second] = await q.claim(10, KINDS)
    assert second.payload["n"] == 2


async def test_rolled_back_enqueue_leaves_no_job(engine: AsyncEngine) -> None:
    q = queue(engine, "w", Clock())
    with pytest.raises(RuntimeError):
        async with session_factory(engine).begin() as session:
            await q.enqueue(session, "test", {"n": 1})
            raise RuntimeError("the producing transaction failed")
    assert await q.depth() == 0


async def test_concurrent_claimers_never_share_a_job(engine: AsyncEngine) -> None:
    clock = Clock()
    workers = [queue(engine, f"w{i}", clock) for i in range(4)]
    await enqueue(workers[0], engine, *({"n": i} for i in range(200)))
    seen: list[int] = []

    async def drain(q: JobQueue) -> None:
        while jobs := await q.claim(7, KINDS):
            seen.extend(j.id for j in jobs)
            async with session_factory(engine).begin() as session:
                for job in jobs:
                    await q.finish(session, job)

    await asyncio.gather(*(drain(q) for q in workers))
    assert len(seen) == 200 and len(set(seen)) == 200


async def test_release_leases_makes_jobs_claimable_again(engine: AsyncEngine) -> None:
    clock = Clock()
    q = queue(engine, "w", clock)
    await enqueue(q, engine, {"n": 1})
    assert len(await q.claim(1, KINDS)) == 1
    assert await q.claim(1, KINDS) == []
    assert await q.release_leases() == 1
    assert len(await q.claim(1, KINDS)) == 1


async def test_a_stale_claim_of_the_same_worker_cannot_finish_the_new_one(
    engine: AsyncEngine,
) -> None:
    clock = Clock()
    q = queue(engine, "w", clock)
    await enqueue(q, engine, {"n": 1})
    [first] = await q.claim(1, KINDS)
    clock.now += 31  # the handler outlived its lease; the same process claims the job again
    [second] = await q.claim(1, KINDS)
    async with session_factory(engine).begin() as session:
        await q.finish(session, first)
    assert await q.depth() == 1
    async with session_factory(engine).begin() as session:
        await q.finish(session, second)
    assert await q.depth() == 0


async def test_a_worker_claims_only_the_kinds_it_runs(engine: AsyncEngine) -> None:
    """A singleton carrier's submits wait for the worker holding it; others leave them."""
    clock = Clock()
    q = queue(engine, "w1", clock)
    async with session_factory(engine).begin() as session:
        await q.enqueue(session, "submit", {"n": 1})
        await q.enqueue(session, "submit@smsc", {"n": 2})
    assert [job.payload["n"] for job in await q.claim(10, ("submit",))] == [1]
    assert await q.claim(10, ("submit", "webhook")) == []
    [held] = await queue(engine, "w2", clock).claim(10, ("submit", "submit@smsc"))
    assert held.kind == "submit@smsc"
