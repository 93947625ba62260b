"""What a call hears: a queue of prompts and pauses, taken one 20 ms frame a tick.

The session asks `next_frame()` on every tick of the media clock; the player answers with the
next frame of the current item, or `None` when the queue is empty. Nothing here sleeps or
keeps time of its own: a prompt lasts as many ticks as it has frames, so `stop()` (barge-in)
takes effect at the very next tick, and a pause of N seconds is 50 N silent frames.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator

from verbal.media.g711 import FRAME_BYTES

__all__ = ["Playback", "Player"]

_SILENT_FRAME = bytes(FRAME_BYTES)


class Playback:
    """One queued item. Await it for how it ended: True when played to its end, False when
    `stop()` cut it short or dropped it from the queue."""

    __slots__ = ("_future", "frames", "pcm", "position")

    def __init__(self, pcm: bytes | None, frames: int) -> None:
        self.pcm = pcm  # None for a pause
        self.frames = frames
        self.position = 0
        self._future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def done(self) -> bool:
        return self._future.done()

    def _finish(self, completed: bool) -> None:
        if not self._future.done():
            self._future.set_result(completed)

    def __await__(self) -> Generator[object, None, bool]:
        return self._future.__await__()


class Player:
    def __init__(self) -> None:
        self._queue: deque[Playback] = deque()
        self._closed = False

    def play(self, pcm: bytes) -> Playback:
        """Queue 8 kHz mono PCM16; a last partial frame is padded with silence."""
        frames = -(-len(pcm) // FRAME_BYTES)
        return self._add(Playback(pcm, frames))

    def pause(self, seconds: float) -> Playback:
        """Queue `seconds` of silence, to the nearest frame."""
        if seconds < 0:
            raise ValueError("a pause cannot be negative")
        return self._add(Playback(None, round(seconds * 50)))

    def _add(self, playback: Playback) -> Playback:
        if self._closed:
            playback._finish(False)  # its call is over: nothing will ever play it
        elif playback.frames == 0:
            playback._finish(True)
        else:
            self._queue.append(playback)
        return playback

    def stop(self) -> None:
        """Barge-in: drop the current item and everything queued; the next frame is silence."""
        while self._queue:
            self._queue.popleft()._finish(False)

    def close(self) -> None:
        """`stop()`, and what is queued from now on ends at once, unplayed."""
        self.stop()
        self._closed = True

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    def next_frame(self) -> bytes | None:
        """This tick's frame: PCM16 of exactly `FRAME_BYTES`, or None with nothing queued."""
        if not self._queue:
            return None
        current = self._queue[0]
        start = current.position * FRAME_BYTES
        current.position += 1
        if current.position == current.frames:
            self._queue.popleft()
            current._finish(True)
        if current.pcm is None:
            return _SILENT_FRAME
        frame = current.pcm[start : start + FRAME_BYTES]
        if len(frame) < FRAME_BYTES:
            frame += bytes(FRAME_BYTES - len(frame))
        return frame
