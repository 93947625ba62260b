"""The recorder's timeline: audio where its RTP timestamp says, silence in the gaps."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from verbal.media.recorder import Recorder


def frame(value: int, samples: int = 160) -> bytes:
    return value.to_bytes(2, "little", signed=True) * samples


def test_gaps_are_silence_and_late_packets_land_in_place() -> None:
    recorder = Recorder()
    recorder.write(7, 1000, frame(1))
    recorder.write(7, 1000 + 480, frame(3))  # 1000+160 was lost, +320 is late
    recorder.write(7, 1000 + 320, frame(2))
    assert recorder.pcm() == frame(1) + frame(0) + frame(2) + frame(3)
    assert recorder.duration == 0.08


def test_duplicates_overwrite_themselves_and_earlier_packets_are_dropped() -> None:
    recorder = Recorder()
    recorder.write(7, 5000, frame(1))
    recorder.write(7, 5000, frame(1))
    recorder.write(7, 5000 - 160, frame(9))  # overtaken by the first packet
    assert recorder.pcm() == frame(1)
    assert recorder.dropped == 1


def test_the_timeline_survives_the_timestamp_wrapping() -> None:
    recorder = Recorder()
    recorder.write(7, 2**32 - 160, frame(1))
    recorder.write(7, 0, frame(2))
    recorder.write(7, 160, frame(3))
    assert recorder.pcm() == frame(1) + frame(2) + frame(3)


def test_a_new_ssrc_continues_from_the_end() -> None:
    recorder = Recorder()
    recorder.write(7, 1000, frame(1))
    recorder.write(8, 9_999_999, frame(2))  # its own random timestamps
    recorder.write(8, 9_999_999 + 160, frame(3))
    assert recorder.pcm() == frame(1) + frame(2) + frame(3)


def test_recording_stops_at_its_limit() -> None:
    recorder = Recorder(max_seconds=0.05)  # 400 samples
    recorder.write(7, 0, frame(1))
    recorder.write(7, 160, frame(2))
    recorder.write(7, 320, frame(3))  # only 80 samples of it fit
    recorder.write(7, 480, frame(4))
    recorder.write(7, 10**6, frame(5))  # no giant gap is allocated either
    assert recorder.pcm() == frame(1) + frame(2) + frame(3, 80)
    assert recorder.full
    assert recorder.dropped == 2


def test_a_wav_file_of_8_khz_mono_16_bit(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.write(7, 0, frame(100, 8000))
    recorder.save(tmp_path / "call.wav")
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == 8000
        assert wav.readframes(8000) == frame(100, 8000)
    with wave.open(io.BytesIO(recorder.wav())) as wav:
        assert wav.getnframes() == 8000
