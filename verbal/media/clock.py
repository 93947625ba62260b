"""One 20 ms media clock per event loop, driving every RTP session's send.

A timer per call would put hundreds of timers on the loop, each waking on its own and each
drifting with the loop's load. One clock instead wakes every 5 ms and sends the next frame of
a quarter of the sessions (its *slot*): each session still sends every 20 ms, but 400
sessions make four bursts of 100 sends rather than one of 400, so the last send of a burst
is a quarter as late, and the packets that come back are read between the bursts. A new
session joins the emptiest slot.

The clock keeps an ideal schedule (start + n * 5 ms) rather than sleeping after each step, so
lateness never accumulates into drift. A frame is **late** when its send happens more than
10 ms after it was due: half a frame, beyond which a receiver's jitter buffer starts to
notice. When the loop was blocked for longer than `MAX_CATCH_UP` ticks, the steps beyond it
are skipped (their frames are counted late) rather than sent in a burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

__all__ = ["SLOTS", "STEP", "TICK", "MediaClock", "Subscription", "shared_clock"]

log = logging.getLogger("verbal.media")

TICK = 0.020
SLOTS = 4
STEP = TICK / SLOTS
LATE = 0.010
# After a stall, at most this many ticks' overdue frames are sent back to back (100 ms of
# audio); a receiver's jitter buffer absorbs that, a longer burst would only overflow it.
MAX_CATCH_UP = 5


class Subscription:
    """One session on the clock: its callback runs every tick until `cancel()`."""

    __slots__ = ("_clock", "callback", "frames", "late_frames", "slot")

    def __init__(self, clock: MediaClock, callback: Callable[[], None], slot: int) -> None:
        self._clock = clock
        self.callback = callback
        self.slot = slot
        self.frames = 0
        self.late_frames = 0

    def cancel(self) -> None:
        self._clock._slots[self.slot].pop(self, None)


class MediaClock:
    """Calls every subscriber once a tick. Runs only while someone is subscribed."""

    def __init__(self) -> None:
        # Dicts keep subscription order and make cancel O(1).
        self._slots: list[dict[Subscription, None]] = [{} for _ in range(SLOTS)]
        self._task: asyncio.Task[None] | None = None
        self.steps = 0  # slots served
        self.frames = 0
        self.late_frames = 0
        # The worst lateness seen, in seconds: how bad the late frames were.
        self.max_lateness = 0.0

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Run `callback` once a tick from its slot's next turn on. Needs a running loop."""
        slot = min(range(SLOTS), key=lambda i: len(self._slots[i]))
        subscription = Subscription(self, callback, slot)
        self._slots[slot][subscription] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media clock")
        return subscription

    @property
    def subscribers(self) -> int:
        return sum(len(slot) for slot in self._slots)

    @property
    def late_ratio(self) -> float:
        """Late frames ÷ frames since the clock was made."""
        return self.late_frames / self.frames if self.frames else 0.0

    async def _run(self) -> None:
        due = time.monotonic()
        step = 0
        while self.subscribers:
            delay = due - time.monotonic()
            # Yield even when overdue, so datagrams are read between catch-up steps.
            await asyncio.sleep(max(delay, 0.0))
            self._serve(self._slots[step % SLOTS], due)
            step += 1
            due += STEP
            behind = int((time.monotonic() - due) / STEP)
            if behind > MAX_CATCH_UP * SLOTS:
                skipped = behind - MAX_CATCH_UP * SLOTS
                self._skip(step, skipped)
                step += skipped
                due += skipped * STEP

    def _serve(self, slot: dict[Subscription, None], due: float) -> None:
        self.steps += 1
        deadline = due + LATE
        for subscription in list(slot):
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

    def _skip(self, step: int, skipped: int) -> None:
        """Count the frames of `skipped` steps from `step` on as due, and late."""
        for offset in range(min(skipped, SLOTS)):
            turns = skipped // SLOTS + (offset < skipped % SLOTS)
            for subscription in self._slots[(step + offset) % SLOTS]:
                subscription.frames += turns
                subscription.late_frames += turns
                self.frames += turns
                self.late_frames += turns


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
