"""What a call says, kept on the sender's own timeline and written as a WAV file.

Each packet's audio goes where its RTP timestamp says, not where it happens to arrive: late
and reordered packets land in their place, duplicates overwrite themselves, and a gap (lost
packets, a peer that stops sending in silence, the time a DTMF event took) stays silence,
so the recording lasts as long as the caller spoke. The first packet is time zero. When the
sender's SSRC changes (a new stream after a transfer or re-INVITE) its timestamps mean
nothing against the old ones, so the new stream continues from the end of the recording.

Audio is kept in memory up to `max_seconds` (16,000 bytes a second); beyond it the recorder
stops taking audio and says so (`full`).
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

from verbal.media.g711 import SAMPLE_RATE

__all__ = ["Recorder"]

_HALF_RANGE = 1 << 31


class Recorder:
    def __init__(self, *, max_seconds: float = 3600.0) -> None:
        self._max_samples = int(max_seconds * SAMPLE_RATE)
        self._pcm = bytearray()
        self._ssrc: int | None = None
        self._origin = 0  # the RTP timestamp of sample 0 of the recording, for this SSRC
        self.full = False
        self.dropped = 0  # packets from before the start, or past the limit

    def write(self, ssrc: int, timestamp: int, pcm: bytes) -> None:
        """Place decoded PCM16 at its RTP timestamp."""
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._origin = (timestamp - len(self._pcm) // 2) & 0xFFFFFFFF
        offset = (timestamp - self._origin) & 0xFFFFFFFF
        start = offset * 2
        if start == len(self._pcm) and offset + len(pcm) // 2 <= self._max_samples:
            self._pcm += pcm  # the usual packet: the next one, in order
            return
        if offset >= _HALF_RANGE:  # before sample 0: a packet overtaken by the first one
            self.dropped += 1
            return
        room = self._max_samples - offset
        if room <= 0:
            self.full = True
            self.dropped += 1
            return
        if len(pcm) // 2 > room:
            self.full = True
            pcm = pcm[: room * 2]
        if start > len(self._pcm):
            self._pcm.extend(bytes(start - len(self._pcm)))
        self._pcm[start : start + len(pcm)] = pcm

    @property
    def duration(self) -> float:
        """Seconds recorded, gaps included."""
        return len(self._pcm) / 2 / SAMPLE_RATE

    def pcm(self) -> bytes:
        """The recording as 8 kHz mono PCM16."""
        return bytes(self._pcm)

    def wav(self) -> bytes:
        """The recording as a WAV file: 8 kHz, mono, 16-bit."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(self._pcm)
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        """Write `wav()` to a file (blocking: from a thread if the file is large)."""
        path.write_bytes(self.wav())
