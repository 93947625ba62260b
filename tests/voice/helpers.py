"""Helpers the voice tests share: a handset's calls, what it heard, and how alike two sounds
are."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

from tests.conftest import LiveVerbal, wait_until
from tests.media.audio import correlation
from verbal.voice import audio

APP_NUMBER = "+15550001000"
HANDSET = "+15550002000"


def handset_calls(verbal: LiveVerbal, handset: str) -> list[dict[str, Any]]:
    with verbal.http() as http:
        response = http.get(f"/sandbox/handsets/{handset}/calls")
    assert response.status_code == 200, response.text
    return list(response.json()["calls"])


def ended_call(verbal: LiveVerbal, handset: str, sid: str | None = None) -> dict[str, Any]:
    """The handset's (newest, or `sid`) call, once it has ended."""

    def ended() -> dict[str, Any] | None:
        for call in handset_calls(verbal, handset):
            if (sid is None or call["call_sid"] == sid) and call["ended_at"] is not None:
                return call
        return None

    return wait_until(ended, timeout=30, what=f"a call of {handset} to end")


def recording(verbal: LiveVerbal, sid: str) -> bytes:
    """What the handset of call `sid` heard, as 8 kHz mono PCM16."""
    with verbal.http() as http:
        response = http.get(f"/sandbox/calls/{sid}/recording.wav")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as file:
        assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (8000, 1, 2)
        return file.readframes(file.getnframes())


def spoken(text: str, voice: str | None = None) -> bytes:
    """`text` as espeak-ng says it at 8 kHz: what a handset should hear for it."""
    return asyncio.run(audio.speech(text, voice))


def best_correlation(heard: bytes, expected: bytes) -> float:
    """How well `expected` appears in `heard` (`tests/media/audio.py`)."""
    return correlation(expected, heard)
