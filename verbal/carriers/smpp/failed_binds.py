"""Failed binds, remembered per source address and per system_id, to slow password guessing.

Without it an SMSC answers wrong passwords as fast as a peer can send them (200 in 0.16 s
were measured). After `allowed` failures from a source address, or against a system_id,
every further bind from that source or for that system_id is held back before it is
examined: `first_delay` seconds, doubling with each failure, up to `max_delay`. Holding back
every bind, right or wrong, keeps the answer's timing from telling the two apart. A source
may have one bind held back at a time; its others are refused unexamined (a lockout), so
opening many connections at once buys no speed. The penalty per system_id stops guessing
from many addresses; it only delays, never refuses, so the real ESME still binds while its
system_id is under attack, a little later.

A clean bind forgets its source's and its system_id's failures; otherwise they are
forgotten `memory` seconds after the last one. Sans-I/O: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FailedBinds"]

# Sources and system_ids remembered at once; beyond, the longest quiet ones are forgotten
# first, so that a flood of made-up system_ids cannot grow memory without end.
MAX_REMEMBERED = 10_000


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class FailedBinds:
    def __init__(
        self, *, allowed: int, first_delay: float, max_delay: float, memory: float
    ) -> None:
        self._allowed = allowed
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._memory = memory
        # Insertion order is the order of last failure: dicts keep it, and a key that fails
        # again is moved to the end.
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._held: set[str] = set()

    def hold(self, source: str, system_id: str, now: float) -> float | None:
        """Seconds to hold this bind back before examining it (0: none), or None to refuse
        it unexamined because its source already has a bind held back.

        A positive answer reserves the source's one slot: call `release` after waiting.
        """
        failures = max(self._count(("source", source), now), self._count(("id", system_id), now))
        if failures < self._allowed:
            return 0.0
        if source in self._held:
            return None
        self._held.add(source)
        return min(self._first_delay * 2 ** (failures - self._allowed), self._max_delay)

    def release(self, source: str) -> None:
        self._held.discard(source)

    def failed(self, source: str, system_id: str, now: float) -> None:
        for key in (("source", source), ("id", system_id)):
            failures = self._failures.pop(key, None)
            count = self._count(key, now, failures)
            self._failures[key] = _Failures(count + 1, now)
        while len(self._failures) > MAX_REMEMBERED:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, source: str, system_id: str) -> None:
        self._failures.pop(("source", source), None)
        self._failures.pop(("id", system_id), None)

    def _count(self, key: tuple[str, str], now: float, failures: _Failures | None = None) -> int:
        failures = failures or self._failures.get(key)
        if failures is None or now - failures.last > self._memory:
            return 0
        return failures.count
