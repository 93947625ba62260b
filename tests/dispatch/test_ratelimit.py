"""Token buckets hold their rate: in one process, and across processes sharing PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.dispatch.ratelimit import Buckets, DatabaseBuckets, MemoryBuckets
from verbal.store import create_engine, migrate, session_factory


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "database"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "database":
        request.getfixturevalue("postgres_url")  # made here, outside the event loop
    return str(request.param)


@pytest.fixture
async def buckets(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Buckets]:
    if kind == "memory":
        yield MemoryBuckets()
        return
    engine = create_engine(request.getfixturevalue("postgres_url"))
    await migrate(engine)
    yield DatabaseBuckets(session_factory(engine))
    await engine.dispose()


async def acquire(buckets: Buckets, key: str, rate: float) -> None:
    # The same loop the submit handler runs for short waits.
    while (wait := await buckets.reserve(key, rate)) > 0:  # noqa: ASYNC110 - a clock, not a flag
        await asyncio.sleep(wait)


async def test_acquisitions_beyond_the_burst_are_spaced_by_the_rate(buckets: Buckets) -> None:
    started = time.monotonic()
    for _ in range(25):
        await acquire(buckets, "carrier:a", 20)
    # A full bucket (20) goes at once, the other 5 at 20/s: at least ~0.25 s.
    assert time.monotonic() - started >= 0.2


async def test_an_empty_bucket_says_how_long_to_wait(buckets: Buckets) -> None:
    assert await buckets.reserve("sender:+15550001000", 2) == 0
    assert await buckets.reserve("sender:+15550001000", 2) == 0
    wait = await buckets.reserve("sender:+15550001000", 2)
    # Up to one token's time (0.5 s at 2/s), less whatever the machine took since the first.
    assert 0 < wait <= 0.5
    # Buckets are independent.
    assert await buckets.reserve("sender:+15550001001", 2) == 0


async def test_zero_rate_means_unlimited(buckets: Buckets) -> None:
    assert all([await buckets.reserve("carrier:free", 0) == 0 for _ in range(1000)])


async def test_workers_sharing_the_database_share_the_limit(engine: AsyncEngine) -> None:
    """Three "workers" (own engines, own connections) racing for one bucket get no more
    than the rate between them."""
    rate, seconds = 20.0, 1.5
    url = engine.url.render_as_string(hide_password=False)
    engines = [create_engine(url) for _ in range(3)]
    granted = 0

    async def worker(engine: AsyncEngine) -> None:
        nonlocal granted
        buckets = DatabaseBuckets(session_factory(engine))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            wait = await buckets.reserve("carrier:shared", rate)
            if wait == 0:
                granted += 1
            else:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    try:
        await asyncio.gather(*(worker(e) for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    # The initial burst (rate) plus rate per second, with a token of slack for the edges.
    assert rate * seconds <= granted <= rate + rate * seconds + 1, granted
