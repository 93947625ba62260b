"""Did the far end hear the prompt? Cross-correlation of 8 kHz PCM16, in pure Python.

`correlation(reference, recording)` slides the reference over the recording and returns the
peak of the normalised dot product `ref·seg / (|ref|·|seg|)`: 1.0 when the recording holds
the reference exactly (G.711's quantisation leaves about 0.999), about 0.7 when it is one of
two summed voices, under 0.1 for unrelated audio. Only the reference's missing or mangled
parts lower it: a recording that holds the whole prompt plus silence around it scores as the
prompt alone.

To stay fast without numpy, the search runs in two passes: the loudest `window` seconds of
the reference are located in the recording at 1 kHz (sums of 8 samples), then the whole
reference is scored at full rate around the best few places found.

Independent of `verbal.media` on purpose: a checker must not share code with what it checks.
"""

from __future__ import annotations

import math
import operator
from array import array
from dataclasses import dataclass

RATE = 8000
_DECIMATE = 8  # 8 kHz -> 1 kHz for the coarse pass
_BLOCK = 160  # 20 ms, the unit in which the loudest window is chosen


@dataclass(frozen=True)
class Match:
    score: float
    # Where sample 0 of the reference lies in the recording (negative: before its start).
    offset: int


def samples(pcm: bytes) -> array[int]:
    values = array("h")
    values.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return values


def _dot(a: array[int] | list[float], b: array[int] | list[float]) -> float:
    return float(sum(map(operator.mul, a, b)))


def _decimate(values: array[int]) -> list[float]:
    return [float(sum(values[i : i + _DECIMATE])) for i in range(0, len(values) - _DECIMATE + 1, 8)]


def _loudest_window(values: array[int], length: int) -> int:
    """The start (a multiple of 20 ms) of the `length` samples with the most energy."""
    energies = [
        _dot(values[i : i + _BLOCK], values[i : i + _BLOCK]) for i in range(0, len(values), _BLOCK)
    ]
    blocks = max(1, length // _BLOCK)
    best, best_start, running = -1.0, 0, sum(energies[:blocks])
    for start in range(len(energies) - blocks + 1):
        if start:
            running += energies[start + blocks - 1] - energies[start - 1]
        if running > best:
            best, best_start = running, start
    return best_start * _BLOCK


def _score(ref: array[int], rec: array[int], offset: int, ref_norm: float) -> float:
    """The whole reference against the recording at `offset`; samples of the reference that
    fall outside the recording count as silence heard."""
    first = max(0, -offset)
    last = min(len(ref), len(rec) - offset)
    if last <= first or ref_norm == 0:
        return 0.0
    a = ref[first:last]
    b = rec[first + offset : last + offset]
    seg_norm = math.sqrt(_dot(b, b))
    return _dot(a, b) / (ref_norm * seg_norm) if seg_norm else 0.0


def match(reference: bytes, recording: bytes, *, window: float = 1.0) -> Match:
    """Where and how well `reference` appears in `recording` (both 8 kHz mono PCM16)."""
    ref, rec = samples(reference), samples(recording)
    if not ref or not rec:
        return Match(0.0, 0)
    length = min(len(ref), int(window * RATE))
    start = _loudest_window(ref, length)
    probe = _decimate(ref[start : start + length])
    coarse = _decimate(rec)
    n = len(probe)
    probe_norm = math.sqrt(_dot(probe, probe)) or 1.0
    # Prefix sums of squares give each segment's norm in O(1).
    squares = [0.0]
    for value in coarse:
        squares.append(squares[-1] + value * value)
    candidates: list[tuple[float, int]] = []
    for lag in range(max(1, len(coarse) - n + 1)):
        segment = coarse[lag : lag + n]
        energy = squares[lag + len(segment)] - squares[lag]
        if energy > 0:
            candidates.append((_dot(probe, segment) / (probe_norm * math.sqrt(energy)), lag))
    candidates.sort(reverse=True)
    ref_norm = math.sqrt(_dot(ref, ref))
    best = Match(0.0, 0)
    for _, lag in candidates[:3]:
        around = lag * _DECIMATE - start
        for offset in range(around - 2 * _DECIMATE, around + 2 * _DECIMATE + 1):
            score = _score(ref, rec, offset, ref_norm)
            if score > best.score:
                best = Match(score, offset)
    return best


def correlation(reference: bytes, recording: bytes) -> float:
    return match(reference, recording).score


def peak(pcm: bytes) -> int:
    """The largest absolute sample: how loud, or whether silent (G.711 silence is < 10)."""
    values = samples(pcm)
    return max((abs(v) for v in values), default=0)
