"""One 20 ms media clock per event loop, driving every RTP session's send.

A timer per call would put hundreds of timers on the loop, each waking on its own and each
drifting with the loop's load; with one clock, a tick is one wake-up that sends every call's
frame in a row (a few microseconds each), so 200 calls cost one timer, and a late tick is
late for all of them at once and visibly so.

The clock keeps an ideal schedule (start + n * 20 ms) rather than sleeping 20 ms after each
tick, so lateness never accumulates into drift. A frame is **late** when its send happens more
than 10 ms after its tick was due: half a frame, beyond which a receiver's jitter buffer
starts to notice. When the loop was blocked for longer than `MAX_CATCH_UP` ticks, the ticks
beyond it are skipped (their frames are counted late) rather than sent in a burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

__all__ = ["TICK", "MediaClock", "Subscription", "shared_clock"]

log = logging.getLogger("verbal.media")

TICK = 0.020
LATE = 0.010
# After a stall, at most this many overdue ticks are sent back to back (100 ms of audio);
# a receiver's jitter buffer absorbs that, a longer burst would only overflow it.
MAX_CATCH_UP = 5


class Subscription:
    """One session on the clock: its callback runs every tick until `cancel()`."""

    __slots__ = ("_clock", "callback", "frames", "late_frames")

    def __init__(self, clock: MediaClock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self.callback = callback
        self.frames = 0
        self.late_frames = 0

    def cancel(self) -> None:
        self._clock._subscriptions.pop(self, None)


class MediaClock:
    """Calls every subscriber once a tick. Runs only while someone is subscribed."""

    def __init__(self) -> None:
        # A dict keeps subscription order (fair: the same calls are not always last) and
        # makes cancel O(1).
        self._subscriptions: dict[Subscription, None] = {}
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.frames = 0
        self.late_frames = 0
        # The worst lateness seen, in seconds: how bad the late frames were.
        self.max_lateness = 0.0

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Run `callback` on every tick from the next one on. Needs a running loop."""
        subscription = Subscription(self, callback)
        self._subscriptions[subscription] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media clock")
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @property
    def late_ratio(self) -> float:
        """Late frames ÷ frames since the clock was made."""
        return self.late_frames / self.frames if self.frames else 0.0

    async def _run(self) -> None:
        due = time.monotonic()
        while self._subscriptions:
            delay = due - time.monotonic()
            # Yield even when overdue, so datagrams are read between catch-up ticks.
            await asyncio.sleep(max(delay, 0.0))
            self._tick(due)
            due += TICK
            behind = int((time.monotonic() - due) / TICK)
            if behind > MAX_CATCH_UP:
                skipped = behind - MAX_CATCH_UP
                missed = skipped * len(self._subscriptions)
                self.frames += missed
                self.late_frames += missed
                for subscription in self._subscriptions:
                    subscription.frames += skipped
                    subscription.late_frames += skipped
                due += skipped * TICK

    def _tick(self, due: float) -> None:
        self.ticks += 1
        deadline = due + LATE
        for subscription in list(self._subscriptions):
            try:
                subscription.callback()
            except Exception:
                # One broken session must not silence every other call: it leaves the clock.
                log.exception("media clock: a session's tick failed; it is unsubscribed")
                subscription.cancel()
                continue
            subscription.frames += 1
            self.frames += 1
            now = time.monotonic()
            if now > deadline:
                subscription.late_frames += 1
                self.late_frames += 1
                self.max_lateness = max(self.max_lateness, now - due)


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
    weakref.WeakKeyDictionary()
)


def shared_clock() -> MediaClock:
    """The running loop's clock: every session of the process ticks on it."""
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = MediaClock()
    return clock
