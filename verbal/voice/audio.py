"""What a call hears, as PCM: speech synthesised with espeak-ng, sound files decoded by sox.

Calls carry 8 kHz, 16-bit, mono, signed little-endian PCM here (what G.711 decodes to).
The work is the media layer's (`verbal/media/prompts.py`: espeak-ng and sox as bounded
subprocesses, never through a shell, and its cache of synthesised prompts); this module adds
what a call needs around it: the platforms' voice names, fetching a sound file under the
webhooks' egress policy, and one error type for the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from verbal.media.errors import MediaError
from verbal.media.prompts import SpeechCache, decode_audio
from verbal.voice.legs import Prompt
from verbal.webhooks.client import HttpClient, exact_url, read_up_to, request_errors

log = logging.getLogger("verbal.voice")

SAMPLE_RATE = 8000
BYTES_PER_SECOND = SAMPLE_RATE * 2
# A sound file larger than this is not fetched whole (about ten minutes of WAV at 8 kHz).
MAX_AUDIO_FILE_BYTES = 10 * 1024 * 1024
# A prompt longer than this is cut: a call's prompt is seconds, not an audiobook.
MAX_PROMPT_SECONDS = 120
MAX_PROMPT_BYTES = MAX_PROMPT_SECONDS * BYTES_PER_SECOND
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


# Synthesised prompts shared by every call of the process (bounded; see SpeechCache).
_speech = SpeechCache()


async def render(
    text: str, audio_url: str | None, voice: str | None, fetch: FetchAudio | None
) -> bytes:
    """The PCM of one prompt: the sound file at `audio_url`, else `text` spoken."""
    try:
        if audio_url is not None:
            if fetch is None:
                raise AudioFailed("no way to fetch audio here")
            pcm = await decode_audio(await fetch(audio_url))
        else:
            pcm = await speech(text, voice)
    except MediaError as error:
        raise AudioFailed(error.message) from None
    return pcm[:MAX_PROMPT_BYTES]


def renderer(fetch: FetchAudio | None) -> Callable[[Prompt], Awaitable[bytes | None]]:
    """`render` for a leg's prompts: None (and a warning in the log) for one that cannot be
    played, which the call skips as the platforms do."""

    async def render_prompt(prompt: Prompt) -> bytes | None:
        try:
            return await render(prompt.text, prompt.audio_url, prompt.voice, fetch)
        except AudioFailed as failed:
            log.warning("a prompt could not be played: %s", failed)
            return None

    return render_prompt


async def speech(text: str, voice: str | None = None) -> bytes:
    """`text` spoken by espeak-ng, at 8 kHz; cached."""
    espeak_voice = _VOICES.get((voice or "").lower(), DEFAULT_VOICE)
    return await _speech.speech(text, espeak_voice)


def seconds(pcm: bytes) -> float:
    return len(pcm) / BYTES_PER_SECOND
