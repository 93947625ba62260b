"""The per-carrier token bucket holds its rate."""

from __future__ import annotations

import asyncio
import time

from verbal.dispatch.ratelimit import RateLimiter


async def acquire(limiter: RateLimiter) -> None:
    # The same loop the submit handler runs for short waits.
    while (wait := limiter.reserve()) > 0:  # noqa: ASYNC110 - waiting on a clock, not a flag
        await asyncio.sleep(wait)


async def test_acquisitions_beyond_the_burst_are_spaced_by_the_rate() -> None:
    limiter = RateLimiter(rate=20, burst=5)
    started = time.monotonic()
    for _ in range(25):
        await acquire(limiter)
    # 5 go at once, the other 20 at 20/s: at least ~1 s, however fast the machine.
    assert time.monotonic() - started >= 0.95


def test_an_empty_bucket_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate=2, burst=1)
    assert limiter.reserve() == 0
    wait = limiter.reserve()
    assert 0.4 < wait <= 0.5


def test_zero_rate_means_unlimited() -> None:
    limiter = RateLimiter(rate=0)
    assert all(limiter.reserve() == 0 for _ in range(10_000))
