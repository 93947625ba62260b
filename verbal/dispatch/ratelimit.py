"""A token bucket per carrier: how fast this process may hand messages to it."""

from __future__ import annotations

import time


class RateLimiter:
    """Allows `rate` acquisitions per second with bursts of up to `burst`; rate 0 is unlimited.

    It never sleeps itself: `reserve` says how long to wait, so a worker holding a claimed
    job can choose between a short pause and putting the job back for later.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._updated = time.monotonic()

    def reserve(self) -> float:
        """Take a token if one is free and return 0, else return the seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate
