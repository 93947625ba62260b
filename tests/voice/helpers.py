"""Helpers the voice tests share: a handset's calls, what it heard, and how alike two sounds
are."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np

from tests.conftest import LiveVerbal, wait_until
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


def recording(verbal: LiveVerbal, sid: str) -> np.ndarray:
    """What the handset of call `sid` heard, as samples."""
    with verbal.http() as http:
        response = http.get(f"/sandbox/calls/{sid}/recording.wav")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as file:
        assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")


def spoken(text: str, voice: str | None = None) -> np.ndarray:
    """`text` as espeak-ng says it at 8 kHz: what a handset should hear for it."""
    return np.frombuffer(asyncio.run(audio.speech(text, voice)), dtype="<i2")


def best_correlation(heard: np.ndarray, expected: np.ndarray) -> float:
    """The highest normalised cross-correlation of `expected` within `heard`."""
    a = heard.astype(np.float64)
    b = expected.astype(np.float64)
    if len(a) < len(b) or not b.any():
        return 0.0
    b = (b - b.mean()) / (b.std() * len(b))
    best = 0.0
    # Coarse positions first (every 10 ms), then every sample around the best one.
    step = 80
    positions = range(0, len(a) - len(b) + 1, step)
    scores = [_score(a, b, start) for start in positions]
    top = positions[int(np.argmax(scores))]
    for start in range(max(0, top - step), min(len(a) - len(b), top + step) + 1):
        best = max(best, _score(a, b, start))
    return best


def _score(a: np.ndarray, b: np.ndarray, start: int) -> float:
    window = a[start : start + len(b)]
    spread = window.std()
    if spread == 0:
        return 0.0
    return float(np.dot((window - window.mean()) / spread, b))
