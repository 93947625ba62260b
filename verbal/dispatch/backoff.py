"""Retry delays: exponential, capped, with jitter so that retries of many jobs spread out."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, *, jitter: float = 0.2) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first failure)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * (1 + random.uniform(-jitter, jitter))
