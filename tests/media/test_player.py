"""The player alone: frames, pauses, completion and barge-in, tick by tick."""

from __future__ import annotations

import pytest

from verbal.media.player import Player


def pcm(frames: float, value: int = 1000) -> bytes:
    return value.to_bytes(2, "little", signed=True) * int(frames * 160)


async def test_frames_in_order_the_last_padded_then_nothing() -> None:
    player = Player()
    playback = player.play(pcm(1) + pcm(0.5, 2000))
    assert player.next_frame() == pcm(1)
    assert not playback.done()
    assert player.next_frame() == pcm(0.5, 2000) + bytes(160)
    assert playback.done() and await playback is True
    assert player.next_frame() is None
    assert not player.playing


async def test_a_pause_is_that_many_silent_frames() -> None:
    player = Player()
    pause = player.pause(0.1)
    frames = [player.next_frame() for _ in range(6)]
    assert frames == [bytes(320)] * 5 + [None]
    assert await pause is True
    with pytest.raises(ValueError):
        player.pause(-1)


async def test_stop_ends_everything_queued_at_the_next_frame() -> None:
    player = Player()
    first, second = player.play(pcm(10)), player.play(pcm(10))
    player.next_frame()
    player.stop()
    assert player.next_frame() is None
    assert await first is False and await second is False
    assert first.position == 1


async def test_empty_audio_is_done_at_once() -> None:
    player = Player()
    assert await player.play(b"") is True
    assert await player.pause(0) is True
    assert player.next_frame() is None


async def test_a_closed_player_ends_what_it_is_given() -> None:
    player = Player()
    playing = player.play(pcm(10))
    player.close()
    assert await playing is False
    assert await player.play(pcm(10)) is False  # an await that would otherwise never end
    assert player.next_frame() is None
