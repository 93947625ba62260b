"""The shared media clock: one per loop, on schedule, and honest about lateness."""

from __future__ import annotations

import asyncio
import time

import pytest

from verbal.media.clock import MAX_CATCH_UP, SLOTS, STEP, MediaClock, shared_clock


async def test_one_clock_per_loop() -> None:
    assert shared_clock() is shared_clock()


async def test_ticks_keep_to_the_schedule_not_to_the_sleeps() -> None:
    clock = MediaClock()
    calls: list[float] = []
    start = time.monotonic()
    subscription = clock.subscribe(lambda: calls.append(time.monotonic()))
    await asyncio.sleep(1.0)
    subscription.cancel()
    elapsed = time.monotonic() - start
    # 50 ticks a second whatever each sleep overshot: the schedule does not drift. (Ticks
    # skipped while the process was starved of CPU count as frames, not as calls.)
    assert abs(subscription.frames - elapsed * 50) <= 2
    assert len(calls) <= subscription.frames
    await asyncio.sleep(0.05)
    assert clock._task is not None and clock._task.done()  # stops with no one left


async def test_a_blocked_loop_makes_late_frames_and_skips_beyond_the_catch_up() -> None:
    clock = MediaClock()
    subscriptions = [clock.subscribe(lambda: None) for _ in range(3)]
    start = time.monotonic()
    await asyncio.sleep(0.1)
    late_before = clock.late_frames
    time.sleep(0.3)  # noqa: ASYNC251 (on purpose: the loop is blocked for 15 ticks)
    await asyncio.sleep(0.1)
    for subscription in subscriptions:
        subscription.cancel()
    elapsed = time.monotonic() - start
    late = clock.late_frames - late_before
    # Every subscriber's frames of the stall are late: those sent in the catch-up burst
    # and those skipped beyond it.
    assert late >= 3 * 12
    assert all(subscription.late_frames >= 12 for subscription in subscriptions)
    assert clock.max_lateness >= 0.1
    assert 0 < clock.late_ratio < 1
    # Ten ticks of the stall were skipped, not run: 40 steps fewer than the time allowed.
    assert clock.steps <= elapsed / STEP - (15 - MAX_CATCH_UP) * SLOTS + 4


async def test_sessions_are_spread_over_the_slots_of_a_tick() -> None:
    clock = MediaClock()
    order: list[int] = []
    subscriptions = [clock.subscribe(lambda i=i: order.append(i)) for i in range(8)]
    assert sorted(s.slot for s in subscriptions) == [0, 0, 1, 1, 2, 2, 3, 3]
    await asyncio.sleep(0.1)
    for subscription in subscriptions:
        subscription.cancel()
    # One slot after the other, 5 ms apart: sessions 0 and 4 share slot 0, 1 and 5 slot 1...
    first = order.index(0)
    assert order[first : first + 8] == [0, 4, 1, 5, 2, 6, 3, 7]


async def test_a_failing_subscriber_leaves_without_stopping_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = MediaClock()
    good: list[int] = []

    def broken() -> None:
        raise RuntimeError("bug")

    clock.subscribe(broken)
    subscription = clock.subscribe(lambda: good.append(1))
    await asyncio.sleep(0.1)
    subscription.cancel()
    assert len(good) >= 3
    assert clock.subscribers == 0
    assert "a session's tick failed" in caplog.text
