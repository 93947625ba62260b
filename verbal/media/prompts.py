"""Audio a call can play, always as 8 kHz mono PCM16: speech, WAV files, decoded audio.

- `synthesise(text, voice)` runs `espeak-ng --stdout` (text on its stdin, never on its
  command line) and resamples its 22,050 Hz output; `SpeechCache` keeps what was said, so a
  prompt every caller hears is synthesised once: a bounded LRU in memory, optionally a
  directory of WAV files that outlives the process.
- `read_wav(data)` reads PCM WAV of any rate, width and channel count with the standard
  library.
- `decode_audio(data)` decodes MP3, Ogg Vorbis, FLAC or any WAV (μ-law, ADPCM...) with a
  `sox` subprocess. Fetching a URL is the caller's job; this takes the bytes.

Every external process is bounded in time and killed when it overruns; every input and output
is bounded in size. Failures are `MediaError`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import wave
from collections import OrderedDict
from pathlib import Path

from verbal.media.errors import MediaError
from verbal.media.g711 import SAMPLE_RATE, to_call_pcm

__all__ = [
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_TEXT",
    "SpeechCache",
    "decode_audio",
    "read_wav",
    "synthesise",
]

MAX_TEXT = 4096  # characters of one prompt
MAX_AUDIO_BYTES = 16 * 1024 * 1024  # an audio file to decode
MAX_AUDIO_SECONDS = 600.0  # of decoded audio: 9.6 MB of PCM
# espeak-ng voice names: a language (en, en-us, pt-br), a variant after `+` (en-us+f3), or a
# path under its data directory (mb/mb-en1). Anything else never reaches its command line.
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}")


async def _run(
    argv: list[str], data: bytes, *, time_limit: float, max_output: int, failure: str
) -> bytes:
    """Feed `data` to a process, return its stdout; kill it past `time_limit` or `max_output`."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise MediaError(failure, f"{argv[0]} could not be started: {error}") from None
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    assert stdin and stdout and stderr  # all three were asked for as pipes

    async def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
            stdin.close()

    async def collect() -> bytes:
        out = bytearray()
        while chunk := await stdout.read(65536):
            out += chunk
            if len(out) > max_output:
                raise MediaError("audio_too_large", f"{argv[0]} produced over {max_output} bytes")
        return bytes(out)

    tasks = [
        asyncio.ensure_future(step) for step in (feed(), collect(), stderr.read(), process.wait())
    ]
    try:
        async with asyncio.timeout(time_limit):
            _, out, errors, code = await asyncio.gather(*tasks)
    except TimeoutError:
        raise MediaError(failure, f"{argv[0]} took longer than {time_limit:g} s") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if process.returncode is None:
            process.kill()
        # Reap it and read its pipes to their end, so that its transport closes now rather
        # than when collected, perhaps after its loop is gone.
        await process.communicate()
    if code != 0:
        detail = errors.decode(errors="replace").strip()[-300:] or f"exit status {code}"
        raise MediaError(failure, f"{argv[0]} failed: {detail}")
    return out


async def synthesise(text: str, voice: str = "en-us", *, time_limit: float = 10.0) -> bytes:
    """Speech for `text` in an espeak-ng `voice`, as 8 kHz mono PCM16."""
    if not _VOICE.fullmatch(voice):
        raise MediaError("tts_failed", f"{voice!r} is not an espeak-ng voice name")
    if len(text) > MAX_TEXT:
        raise MediaError("tts_failed", f"a prompt is at most {MAX_TEXT} characters")
    wav = await _run(
        ["espeak-ng", "--stdout", "-v", voice],
        text.encode(),
        time_limit=time_limit,
        # espeak-ng speaks about 15 characters a second at 22,050 Hz: ample.
        max_output=64 * 1024 + len(text) * 44100,
        failure="tts_failed",
    )
    try:
        return read_wav(wav)
    except MediaError as error:
        raise MediaError("tts_failed", f"espeak-ng's output: {error.message}") from None


def read_wav(data: bytes, *, max_seconds: float = MAX_AUDIO_SECONDS) -> bytes:
    """A PCM WAV file (any rate, 8-32 bits, any channels) as 8 kHz mono PCM16."""
    if len(data) > MAX_AUDIO_BYTES:
        raise MediaError("audio_too_large", f"audio is limited to {MAX_AUDIO_BYTES} bytes")
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            # A streamed WAV (espeak-ng's) claims ~2 GB of frames: read what is there.
            frames = wav.readframes(min(wav.getnframes(), len(data)))
    except (wave.Error, EOFError) as error:
        raise MediaError("audio_unsupported", f"not a PCM WAV file: {error}") from None
    if rate <= 0 or channels <= 0:
        raise MediaError("audio_unsupported", "a WAV file without a rate or channels")
    if len(frames) / (width * channels) / rate > max_seconds:
        raise MediaError("audio_too_large", f"audio is limited to {max_seconds:g} s")
    try:
        return to_call_pcm(frames, rate=rate, width=width, channels=channels)
    except ValueError as error:
        raise MediaError("audio_unsupported", str(error)) from None


def _sniff(data: bytes) -> str | None:
    """sox's name for the format, from the first bytes (sox cannot guess on a pipe)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    return None


async def decode_audio(
    data: bytes, *, time_limit: float = 30.0, max_seconds: float = MAX_AUDIO_SECONDS
) -> bytes:
    """MP3, Ogg Vorbis, FLAC or WAV bytes as 8 kHz mono PCM16. PCM WAV is read in-process;
    the rest goes through sox (Debian: `sox`, `libsox-fmt-mp3` for MP3)."""
    if len(data) > MAX_AUDIO_BYTES:
        raise MediaError("audio_too_large", f"audio is limited to {MAX_AUDIO_BYTES} bytes")
    kind = _sniff(data)
    if kind is None:
        raise MediaError("audio_unsupported", "not MP3, Ogg, FLAC or WAV audio")
    if kind == "wav":
        try:
            return read_wav(data, max_seconds=max_seconds)
        except MediaError as error:
            if error.code != "audio_unsupported":
                raise  # too large: sox would not change that
    # -V1: errors only on stderr. Output: raw signed 16-bit little-endian, 8 kHz, mono.
    output = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-r", str(SAMPLE_RATE)]
    pcm = await _run(
        ["sox", "-V1", "-t", kind, "-", *output, "-c", "1", "-"],
        data,
        time_limit=time_limit,
        max_output=int(max_seconds * SAMPLE_RATE) * 2,
        failure="audio_failed",
    )
    return pcm[: len(pcm) - len(pcm) % 2]


class SpeechCache:
    """Synthesised prompts by (voice, text): an LRU of at most `max_bytes` of PCM in memory,
    and, with `directory`, one WAV file per prompt there (read back after a restart; never
    pruned: clear the directory to reclaim it). Concurrent requests for one prompt share one
    synthesis."""

    def __init__(
        self,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        directory: Path | None = None,
        time_limit: float = 10.0,
    ) -> None:
        self.max_bytes = max_bytes
        self.directory = directory
        self.time_limit = time_limit
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._pending: dict[tuple[str, str], asyncio.Future[bytes]] = {}
        self.hits = 0
        self.synthesised = 0

    async def speech(self, text: str, voice: str = "en-us") -> bytes:
        """8 kHz mono PCM16 of `text` spoken in `voice`."""
        key = (voice, text)
        if (pcm := self._entries.get(key)) is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return pcm
        pending = self._pending.get(key)
        if pending is None:
            # A task of its own, not the first caller's: a caller that gives up (its call
            # hung up) does not fail the others waiting for the same prompt.
            pending = self._pending[key] = asyncio.ensure_future(self._load(voice, text))
            pending.add_done_callback(lambda done: self._settle(key, done))
        else:
            self.hits += 1
        return await asyncio.shield(pending)

    def _settle(self, key: tuple[str, str], done: asyncio.Future[bytes]) -> None:
        del self._pending[key]
        if not done.cancelled() and done.exception() is None:
            self._keep(key, done.result())

    async def _load(self, voice: str, text: str) -> bytes:
        path = self._path(voice, text)
        if path is not None:
            with contextlib.suppress(OSError):
                data = await asyncio.to_thread(path.read_bytes)
                with contextlib.suppress(MediaError):
                    return read_wav(data)
        pcm = await synthesise(text, voice, time_limit=self.time_limit)
        self.synthesised += 1
        if path is not None:
            await asyncio.to_thread(_write_wav, path, pcm)
        return pcm

    def _path(self, voice: str, text: str) -> Path | None:
        if self.directory is None:
            return None
        digest = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
        return self.directory / f"{digest}.wav"

    def _keep(self, key: tuple[str, str], pcm: bytes) -> None:
        if len(pcm) > self.max_bytes:
            return
        self._entries[key] = pcm
        self._bytes += len(pcm)
        while self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old)


def _write_wav(path: Path, pcm: bytes) -> None:
    """Atomically: a reader never sees half a file, and two processes may race harmlessly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    os.replace(partial, path)
