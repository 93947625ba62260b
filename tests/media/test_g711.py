"""G.711 and resampling to the calls' 8 kHz mono PCM16."""

from __future__ import annotations

import math
import struct

import pytest

from tests.media.audio import correlation
from verbal.media.g711 import FRAME_BYTES, Codec, silence, to_call_pcm


def sine(rate: int, seconds: float, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    count = int(rate * seconds)
    return struct.pack(
        f"<{count}h",
        *(round(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count)),
    )


def test_payload_types_and_names_are_rfc_3551s() -> None:
    assert (Codec.PCMU.value, Codec.PCMA.value) == (0, 8)
    assert (Codec.PCMU.encoding_name, Codec.PCMA.encoding_name) == ("PCMU", "PCMA")


def test_silence_is_each_laws_zero() -> None:
    assert silence(Codec.PCMU) == b"\xff" * 160
    assert silence(Codec.PCMA) == b"\xd5" * 160
    assert Codec.PCMU.decode(silence(Codec.PCMU)) == bytes(FRAME_BYTES)


@pytest.mark.parametrize("codec", list(Codec))
def test_a_round_trip_keeps_the_signal(codec: Codec) -> None:
    tone = sine(8000, 0.5)
    encoded = codec.encode(tone)
    assert len(encoded) == len(tone) // 2
    assert correlation(tone, codec.decode(encoded)) > 0.999


def test_known_code_words() -> None:
    # G.711's tables: full-scale positive is 0x80 in μ-law, 0xAA in A-law (even bits inverted).
    full = struct.pack("<h", 32767)
    assert Codec.PCMU.encode(full) == b"\x80"
    assert Codec.PCMA.encode(full) == b"\xaa"


def test_any_pcm_comes_to_8_khz_mono_16_bit() -> None:
    tone = sine(8000, 0.5)
    stereo_44k = b"".join(sample * 2 for (sample,) in struct.iter_unpack("<2s", sine(44100, 0.5)))
    converted = to_call_pcm(stereo_44k, rate=44100, channels=2)
    assert abs(len(converted) - len(tone)) <= 4
    assert correlation(tone, converted) > 0.99
    unsigned_8bit = bytes((v >> 8) + 128 for (v,) in struct.iter_unpack("<h", tone))
    assert correlation(tone, to_call_pcm(unsigned_8bit, rate=8000, width=1)) > 0.99
    with pytest.raises(ValueError):
        to_call_pcm(tone, rate=8000, width=5)
