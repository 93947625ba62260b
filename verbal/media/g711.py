"""G.711 (ITU-T G.711 μ-law and A-law) and the 8 kHz mono PCM16 every call's audio is kept in.

All audio inside `verbal.media` is *linear PCM*: signed 16-bit little-endian samples, 8,000 a
second, one channel. Codecs turn it into RTP payloads and back; `to_call_pcm` brings any other
PCM (espeak-ng's 22,050 Hz, a 44.1 kHz stereo WAV) to that shape.

The arithmetic is the standard library's `audioop`, in C: a 20 ms frame costs about a
microsecond to encode, which is what lets one process carry hundreds of calls. `audioop` is
deprecated in 3.11-3.12 and gone from 3.13's standard library, where the `audioop-lts`
package (a dependency there) provides the same module; this is the one place that imports it.
"""

from __future__ import annotations

import enum
import warnings

with warnings.catch_warnings():
    # "'audioop' is deprecated and slated for removal in Python 3.13": audioop-lts keeps it.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Codec",
    "silence",
    "to_call_pcm",
]

SAMPLE_RATE = 8000
# 20 ms: the packetisation time every G.711 peer accepts by default (RFC 3551, 4.5).
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2


class Codec(enum.IntEnum):
    """A G.711 law, valued by its static RTP payload type (RFC 3551, table 4)."""

    PCMU = 0
    PCMA = 8

    @property
    def encoding_name(self) -> str:
        """The name SDP's `a=rtpmap` gives it."""
        return self.name

    def encode(self, pcm: bytes) -> bytes:
        """Linear PCM16 to one byte a sample of this law."""
        if self is Codec.PCMU:
            return audioop.lin2ulaw(pcm, 2)
        return audioop.lin2alaw(pcm, 2)

    def decode(self, payload: bytes) -> bytes:
        """One byte a sample of this law to linear PCM16."""
        if self is Codec.PCMU:
            return audioop.ulaw2lin(payload, 2)
        return audioop.alaw2lin(payload, 2)


_SILENT_FRAME = bytes(FRAME_BYTES)
_SILENCE = {codec: codec.encode(_SILENT_FRAME) for codec in Codec}


def silence(codec: Codec) -> bytes:
    """One 20 ms frame of silence, encoded (0xFF for μ-law, 0xD5 for A-law)."""
    return _SILENCE[codec]


def to_call_pcm(pcm: bytes, *, rate: int, width: int = 2, channels: int = 1) -> bytes:
    """Any linear PCM (little-endian, `width` bytes a sample, interleaved channels) to 8 kHz
    mono PCM16. 8-bit input is unsigned, as WAV stores it."""
    if width not in (1, 2, 3, 4):
        raise ValueError(f"unsupported sample width {width}")
    if channels < 1 or rate < 1:
        raise ValueError("rate and channels must be positive")
    whole = len(pcm) - len(pcm) % (width * channels)
    pcm = pcm[:whole]
    if width == 1:
        pcm = audioop.bias(pcm, 1, -128)  # WAV's 8-bit samples are unsigned
    if width != 2:
        pcm = audioop.lin2lin(pcm, width, 2)
    if channels == 2:
        pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
    elif channels > 2:
        # Rare (surround WAVs): keep the first channel, one sample of every `channels`.
        frames = memoryview(pcm).cast("h")
        pcm = frames[::channels].tobytes()
    if rate != SAMPLE_RATE:
        pcm, _ = audioop.ratecv(pcm, 2, 1, rate, SAMPLE_RATE, None)
    return pcm
