"""The read-through cache: a read forgotten while it runs is not kept."""

from __future__ import annotations

import asyncio

from verbal.store.cache import TtlCache


async def test_a_read_forgotten_while_it_ran_is_not_kept() -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_load() -> str:
        started.set()
        await release.wait()
        return "before the change"

    async def fresh_load() -> str:
        return "after the change"

    reading = asyncio.create_task(cache.get("key", slow_load))
    await started.wait()
    cache.forget("key")  # the change committed while the read was running
    release.set()
    # The caller that started the read gets what it read...
    assert await reading == "before the change"
    # ...but the next caller reads again.
    assert cache.peek("key") is None
    assert await cache.get("key", fresh_load) == "after the change"
    assert cache.peek("key") == "after the change"


async def test_a_read_not_forgotten_is_kept_and_shared() -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    loads = 0
    release = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return "value"

    first = asyncio.create_task(cache.get("key", load))
    second = asyncio.create_task(cache.get("key", load))
    await asyncio.sleep(0)
    release.set()
    assert (await first, await second) == ("value", "value")
    assert loads == 1
    assert cache.peek("key") == "value"
