"""A small read-through cache for rows read on every message (accounts, number owners,
sandbox rules).

Entries expire after `ttl` seconds, which bounds how long a change made by another process
goes unseen; the process that makes a change clears the entry itself. Loads are single-flight:
when an entry is missing, the first caller reads it and every concurrent caller awaits that
same read, so an expiry under load costs one query, not one per waiting request. Misses
(`None`) are not kept: a row another process adds must be found at once.

A caller inside a transaction loads on its own (`shared=False`): on SQLite a read made for
others would wait for the connection its transaction holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_ENTRIES = 10_000


class TtlCache(Generic[V]):
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._loading: dict[Hashable, asyncio.Future[V | None]] = {}

    def peek(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    async def get(
        self, key: Hashable, load: Callable[[], Awaitable[V | None]], *, shared: bool = True
    ) -> V | None:
        value = self.peek(key)
        if value is not None:
            return value
        if not shared:
            value = await load()
            if value is not None:
                self.put(key, value)
            return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: the callers waiting get it raised
            raise
        finally:
            current = self._loading.get(key) is future
            if current:
                del self._loading[key]
        # A read forgotten while it ran may predate the change that forgot it: not kept.
        if value is not None and current:
            self.put(key, value)
        future.set_result(value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, value)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
