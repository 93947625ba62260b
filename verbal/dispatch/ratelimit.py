"""Token buckets: how fast messages may go to a carrier, or from one sender.

A bucket allows `rate` acquisitions per second with bursts of up to `max(1, rate)`; rate 0
is unlimited. `reserve` never sleeps: it takes a token and returns 0, or says how long until
one is free, so a worker holding a claimed job can choose between a short pause and putting
the job back for later.

`MemoryBuckets` serve one process (a SQLite deployment has one). `DatabaseBuckets` keep the
buckets in the shared database, so limits hold across every worker node: taking a token is
one conditional UPDATE, atomic on PostgreSQL however many workers race for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.models import RateBucket


class Buckets(Protocol):
    async def reserve(self, key: str, rate: float) -> float:
        """Take a token from bucket `key` (0 returned), or return the seconds until one."""
        ...


def _capacity(rate: float) -> float:
    return max(1.0, rate)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    async def reserve(self, key: str, rate: float) -> float:
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.setdefault(key, _Bucket(_capacity(rate), now))
        bucket.tokens = min(_capacity(rate), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate


class DatabaseBuckets:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def reserve(self, key: str, rate: float) -> float:
        if rate <= 0:
            return 0.0
        now = time.time()
        capacity = _capacity(rate)
        refilled = func.least(capacity, RateBucket.tokens + (now - RateBucket.updated) * rate)
        async with self._sessions.begin() as session:
            taken = await session.scalar(
                update(RateBucket)
                .where(RateBucket.key == key, refilled >= 1)
                .values(tokens=refilled - 1, updated=now)
                .returning(RateBucket.tokens)
            )
            if taken is not None:
                return 0.0
            tokens = await session.scalar(select(refilled).where(RateBucket.key == key))
            if tokens is None:
                # A new bucket starts full: create it with this reservation's token taken.
                created = await session.scalar(
                    pg_insert(RateBucket)
                    .values(key=key, tokens=capacity - 1, updated=now)
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(RateBucket.key)
                )
                if created is not None:
                    return 0.0
                return await self.reserve(key, rate)  # another worker created it first
        return (1 - float(tokens)) / rate
