"""The per-carrier token bucket holds its rate."""

from __future__ import annotations

import time

from verbal.dispatch.ratelimit import RateLimiter


async def test_acquisitions_beyond_the_burst_are_spaced_by_the_rate() -> None:
    limiter = RateLimiter(rate=20, burst=5)
    started = time.monotonic()
    for _ in range(25):
        await limiter.acquire()
    # 5 go at once, the other 20 at 20/s: at least ~1 s, however fast the machine.
    assert time.monotonic() - started >= 0.95


async def test_zero_rate_means_unlimited() -> None:
    limiter = RateLimiter(rate=0)
    started = time.monotonic()
    for _ in range(10_000):
        await limiter.acquire()
    assert time.monotonic() - started < 5
