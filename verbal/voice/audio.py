"""What a call hears, as PCM: speech synthesised with espeak-ng, sound files decoded by sox.

Calls carry 8 kHz, 16-bit, mono, signed little-endian PCM here (what G.711 decodes to).
Rendering is kept behind `render` alone so that the media layer's player (RTP, G.711, its
prompt cache) can take its place without the call code changing. Both tools run as bounded
subprocesses; text and files are never passed through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from verbal.webhooks.client import HttpClient, exact_url, read_up_to, request_errors

log = logging.getLogger("verbal.voice")

SAMPLE_RATE = 8000
BYTES_PER_SECOND = SAMPLE_RATE * 2
# A sound file larger than this is not fetched whole (about ten minutes of WAV at 8 kHz).
MAX_AUDIO_FILE_BYTES = 10 * 1024 * 1024
# A prompt longer than this is cut: a call's prompt is seconds, not an audiobook.
MAX_PROMPT_SECONDS = 120
MAX_PROMPT_BYTES = MAX_PROMPT_SECONDS * BYTES_PER_SECOND
# espeak-ng and sox are given this long per prompt.
TOOL_TIMEOUT_SECONDS = 20.0
# Synthesised prompts kept in memory, least recently used dropped first.
CACHE_ENTRIES = 256
# Voices: espeak-ng's for the platforms' names (RCML man/woman, Plivo MAN/WOMAN, Tropo's
# named voices fall back to the default).
_VOICES = {"man": "en+m3", "woman": "en+f3", "alice": "en-us+f3", "kate": "en-gb+f3"}
DEFAULT_VOICE = "en-us"

# Fetches a sound file's bytes (bounded, through the egress policy), for `render`.
FetchAudio = Callable[[str], Awaitable[bytes]]


class AudioFailed(Exception):
    """A prompt could not be rendered (the tool failed, or the file is not audio)."""


def http_fetcher(client: HttpClient) -> FetchAudio:
    """Sound files fetched with the webhooks' client, under its egress policy and timeout."""

    async def fetch(url: str) -> bytes:
        try:
            async with client.session.get(exact_url(url), allow_redirects=True) as response:
                if response.status != 200:
                    raise AudioFailed(f"{url} answered {response.status}")
                return await read_up_to(response.content, MAX_AUDIO_FILE_BYTES)
        except (TimeoutError, *request_errors()) as error:
            raise AudioFailed(f"{url} could not be fetched: {error!r}") from None

    return fetch


_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()


async def render(
    text: str, audio_url: str | None, voice: str | None, fetch: FetchAudio | None
) -> bytes:
    """The PCM of one prompt: the sound file at `audio_url`, else `text` spoken."""
    if audio_url is not None:
        if fetch is None:
            raise AudioFailed("no way to fetch audio here")
        return await _decode(await fetch(audio_url), audio_url)
    return await speech(text, voice)


async def speech(text: str, voice: str | None = None) -> bytes:
    """`text` spoken by espeak-ng, at 8 kHz; cached."""
    espeak_voice = _VOICES.get((voice or "").lower(), DEFAULT_VOICE)
    key = (espeak_voice, text)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    # `--` ends the options: a text starting with `-` is text.
    wav = await _run(["espeak-ng", "--stdout", "-v", espeak_voice, "--", text], b"")
    pcm = await _decode(wav, "speech.wav")
    _cache[key] = pcm
    if len(_cache) > CACHE_ENTRIES:
        _cache.popitem(last=False)
    return pcm


async def _decode(data: bytes, name: str) -> bytes:
    """Any file sox reads, as 8 kHz mono PCM; the file type from its name's extension."""
    extension = name.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    kind = extension if extension in ("wav", "mp3", "ogg", "flac", "au", "aiff") else "wav"
    command = ["sox", "-q", "-t", kind, "-", "-t", "raw", "-e", "signed-integer", "-b", "16"]
    command += ["-c", "1", "-r", str(SAMPLE_RATE), "-L", "-"]
    pcm = await _run(command, data)
    return pcm[:MAX_PROMPT_BYTES]


async def _run(command: list[str], stdin: bytes) -> bytes:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise AudioFailed(f"{command[0]} cannot run: {error}") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), TOOL_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise AudioFailed(f"{command[0]} took longer than {TOOL_TIMEOUT_SECONDS} s") from None
    if process.returncode != 0:
        message = err.decode("utf-8", "replace").strip()[:200]
        raise AudioFailed(f"{command[0]} failed ({process.returncode}): {message}")
    return out


def seconds(pcm: bytes) -> float:
    return len(pcm) / BYTES_PER_SECOND
