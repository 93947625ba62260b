"""Prompts: espeak-ng speech and its cache, WAV files, audio decoded by sox."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import pytest

from tests.media.audio import correlation
from tests.media.conftest import WELCOME
from verbal.media.errors import MediaError
from verbal.media.prompts import (
    MAX_AUDIO_BYTES,
    MAX_TEXT,
    SpeechCache,
    decode_audio,
    read_wav,
    synthesise,
)


def write_wav(path: Path, pcm: bytes, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


def sox_convert(source: Path, target: Path, *options: str) -> bytes:
    """`sox source [options] target`, an encoder independent of the decoding under test."""
    done = subprocess.run(
        ["sox", str(source), *options, str(target)], capture_output=True, timeout=60
    )
    if done.returncode != 0 and b"no handler for" in done.stderr:
        pytest.skip(f"sox cannot write {target.suffix} here: {done.stderr.decode().strip()}")
    assert done.returncode == 0, done.stderr
    return target.read_bytes()


async def test_speech_is_8_khz_pcm_of_the_expected_length(welcome: bytes) -> None:
    assert len(welcome) % 2 == 0
    assert 2.5 < len(welcome) / 16000 < 8  # seconds: espeak-ng speaks about 15 chars/s
    other = await synthesise("Goodbye.", "en-us+f3")
    assert 0.3 < len(other) / 16000 < 2
    assert correlation(other, welcome) < 0.3


async def test_bad_voices_and_long_texts_fail_as_values() -> None:
    with pytest.raises(MediaError) as error:
        await synthesise("hi", "-w out.wav")  # never reaches the command line
    assert error.value.code == "tts_failed"
    with pytest.raises(MediaError) as error:
        await synthesise("hi", "xx-nowhere")
    assert error.value.code == "tts_failed"
    assert "does not exist" in error.value.message  # espeak-ng's own reason
    with pytest.raises(MediaError, match="at most"):
        await synthesise("a" * (MAX_TEXT + 1))


async def test_text_is_never_an_option() -> None:
    # On stdin, "--version" is words to say, not espeak-ng's flag.
    pcm = await synthesise("--version")
    assert len(pcm) > 8000


async def test_synthesis_is_bounded_in_time() -> None:
    with pytest.raises(MediaError) as error:
        await synthesise(WELCOME * 20, time_limit=0.001)
    assert error.value.code == "tts_failed"
    assert "longer than" in error.value.message


async def test_the_cache_synthesises_each_prompt_once(welcome: bytes) -> None:
    cache = SpeechCache()
    together = await asyncio.gather(*(cache.speech(WELCOME) for _ in range(20)))
    assert cache.synthesised == 1 and cache.hits == 19
    assert all(pcm == welcome for pcm in together)
    assert await cache.speech(WELCOME) == welcome
    assert cache.synthesised == 1
    await cache.speech(WELCOME, "en-us+f3")  # another voice is another prompt
    assert cache.synthesised == 2


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    one, two, three = [await synthesise(text) for text in ("one", "two", "three")]
    cache = SpeechCache(max_bytes=len(one) + max(len(two), len(three)) + 100)
    await cache.speech("one")
    await cache.speech("two")
    await cache.speech("one")  # now "two" is the least recently used
    await cache.speech("three")
    assert cache.synthesised == 3
    await cache.speech("one")
    assert cache.synthesised == 3  # kept
    await cache.speech("two")
    assert cache.synthesised == 4  # evicted


async def test_a_cache_directory_outlives_the_process(tmp_path: Path, welcome: bytes) -> None:
    first = SpeechCache(directory=tmp_path / "tts")
    await first.speech(WELCOME)
    [stored] = (tmp_path / "tts").iterdir()
    assert stored.suffix == ".wav"
    second = SpeechCache(directory=tmp_path / "tts")
    assert await second.speech(WELCOME) == welcome
    assert second.synthesised == 0


async def test_a_cancelled_caller_does_not_fail_the_others(welcome: bytes) -> None:
    cache = SpeechCache()
    first = asyncio.ensure_future(cache.speech(WELCOME))
    second = asyncio.ensure_future(cache.speech(WELCOME))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == welcome
    assert first.cancelled()


async def test_failures_are_not_cached() -> None:
    cache = SpeechCache(time_limit=0.001)
    with pytest.raises(MediaError):
        await cache.speech(WELCOME)
    cache.time_limit = 10.0
    assert len(await cache.speech(WELCOME)) > 16000


def test_wav_files_of_any_shape(tmp_path: Path, welcome: bytes) -> None:
    source = write_wav(tmp_path / "8k.wav", welcome)
    for name, options in {
        "44k-stereo.wav": ["-r", "44100", "-c", "2"],
        "16k.wav": ["-r", "16000"],
        "8bit.wav": ["-b", "8", "-e", "unsigned-integer"],
    }.items():
        data = sox_convert(source, tmp_path / name, *options)
        assert correlation(welcome, read_wav(data)) > 0.97, name


def test_not_a_wav_or_too_long(tmp_path: Path, welcome: bytes) -> None:
    with pytest.raises(MediaError) as error:
        read_wav(b"RIFF....WAVEjunk")
    assert error.value.code == "audio_unsupported"
    data = write_wav(tmp_path / "x.wav", welcome).read_bytes()
    with pytest.raises(MediaError) as error:
        read_wav(data, max_seconds=1)
    assert error.value.code == "audio_too_large"


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("prompt.mp3", ["-r", "22050"]),
        ("prompt.ogg", ["-r", "44100", "-c", "2"]),
        ("prompt.flac", ["-r", "16000"]),
        ("prompt-ulaw.wav", ["-e", "u-law"]),  # not PCM: the wave module declines, sox reads
        ("prompt-24bit.wav", ["-b", "24"]),  # WAVE_FORMAT_EXTENSIBLE: the same before 3.12
    ],
)
async def test_audio_decoded_by_sox(
    tmp_path: Path, welcome: bytes, name: str, options: list[str]
) -> None:
    data = sox_convert(write_wav(tmp_path / "8k.wav", welcome), tmp_path / name, *options)
    pcm = await decode_audio(data)
    assert correlation(welcome, pcm) > 0.9
    assert abs(len(pcm) - len(welcome)) < 16000  # mp3 pads up to a frame or two


async def test_audio_limits_and_garbage(tmp_path: Path, welcome: bytes) -> None:
    ogg = sox_convert(write_wav(tmp_path / "8k.wav", welcome), tmp_path / "p.ogg")
    with pytest.raises(MediaError) as error:
        await decode_audio(ogg, max_seconds=1.0)
    assert error.value.code == "audio_too_large"
    with pytest.raises(MediaError) as error:
        await decode_audio(b"<html>not found</html>")
    assert error.value.code == "audio_unsupported"
    with pytest.raises(MediaError) as error:
        await decode_audio(b"OggS" + bytes(5000))  # says Ogg, is not
    assert error.value.code == "audio_failed"
    with pytest.raises(MediaError) as error:
        await decode_audio(b"ID3" + bytes(MAX_AUDIO_BYTES))
    assert error.value.code == "audio_too_large"
    with pytest.raises(MediaError) as error:
        await decode_audio(ogg, time_limit=0.0001)
    assert error.value.code == "audio_failed"
