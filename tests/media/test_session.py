"""RTP sessions over real UDP on 127.0.0.1: what one plays, the other records."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.media.audio import match, peak
from tests.media.conftest import Opener, connected, sipp_capture
from tests.processes import free_port
from verbal.media.clock import MediaClock
from verbal.media.errors import MediaError
from verbal.media.g711 import Codec
from verbal.media.recorder import Recorder
from verbal.media.rtp import RtpPacket, parse
from verbal.media.session import PortPool, RtpSession


async def settle() -> None:
    """Time for the last frames in flight to arrive (a few ticks)."""
    await asyncio.sleep(0.1)


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
async def test_what_one_side_plays_the_other_records(
    sessions: Opener, welcome: bytes, codec: Codec
) -> None:
    a, b = await connected(sessions, codec)
    b.recorder = Recorder()
    assert await a.player.play(welcome) is True
    await settle()

    heard = match(welcome, b.recorder.pcm())
    assert heard.score >= 0.99  # G.711 both ways loses almost nothing
    assert b.stats.packets_received >= len(welcome) // 320
    assert b.stats.dropped == 0
    assert a.stats.packets_sent >= len(welcome) // 320


async def test_both_directions_at_once(sessions: Opener, welcome: bytes) -> None:
    a, b = await connected(sessions, Codec.PCMA)
    a.recorder, b.recorder = Recorder(), Recorder()
    reversed_prompt = welcome[::-1]  # different audio of the same length
    await asyncio.gather(a.player.play(welcome), b.player.play(reversed_prompt))
    await settle()
    assert match(welcome, b.recorder.pcm()).score >= 0.99
    assert match(welcome, a.recorder.pcm()).score < 0.3  # a heard b, not itself


async def test_silence_flows_while_nothing_plays(sessions: Opener) -> None:
    _, b = await connected(sessions)
    b.recorder = Recorder()
    await asyncio.sleep(0.5)
    assert b.stats.packets_received >= 15  # 50 a second, on a busy machine
    assert peak(b.recorder.pcm()) == 0  # μ-law silence decodes to 0


async def test_no_silence_when_asked_not_to(sessions: Opener, welcome: bytes) -> None:
    a = await sessions(send_silence=False)
    b = await sessions(remote=a.local_address)
    a.update(remote=b.local_address)
    await asyncio.sleep(0.2)
    assert b.stats.packets_received == 0
    await a.player.play(welcome[:3200])  # 0.2 s: 10 frames
    await settle()
    assert b.stats.packets_received == 10


async def test_latches_to_where_media_comes_from(sessions: Opener, welcome: bytes) -> None:
    # b's SDP named a port nobody listens on (a NAT rewrote it, say): b must answer to the
    # address a's packets actually come from.
    a = await sessions()
    b = await sessions(remote=("127.0.0.1", free_port()))
    a.update(remote=b.local_address)
    a.recorder = Recorder()
    await asyncio.sleep(0.1)
    assert b.remote == a.local_address and b.latched
    await b.player.play(welcome)
    await settle()
    assert match(welcome, a.recorder.pcm()).score >= 0.99


async def test_hold_sends_nothing_and_an_sdp_address_is_an_ip(
    sessions: Opener, welcome: bytes
) -> None:
    a, b = await connected(sessions)
    a.sending = False  # the far end put the call on hold
    await asyncio.sleep(0.1)
    count = b.stats.packets_received
    await asyncio.sleep(0.2)
    assert b.stats.packets_received == count
    a.sending = True
    await asyncio.sleep(0.2)
    assert b.stats.packets_received > count
    a.update(remote=("0.0.0.0", 4000))  # hold the RFC 2543 way
    assert a.remote is None
    with pytest.raises(ValueError):
        a.update(remote=("phone.example", 4000))


async def test_digits_sent_and_received(sessions: Opener) -> None:
    a, b = await connected(sessions)
    await a.send_digits("1#4490*", duration=0.06, gap=0.04)
    await settle()
    keys = [b.digits.get_nowait() for _ in range(b.digits.qsize())]
    assert "".join(keys) == "1#4490*"


async def test_digits_hold_the_prompt_instead_of_cutting_it(
    sessions: Opener, welcome: bytes
) -> None:
    a, b = await connected(sessions)
    b.recorder = Recorder()
    playing = a.player.play(welcome)
    await asyncio.sleep(0.5)
    await a.send_digits("7")
    assert await playing is True
    await settle()
    assert b.digits.get_nowait() == "7"
    # The prompt resumed where it stopped, so the recording holds all of it, with the
    # digit's time (about 0.2 s of silence) cut into it: each part still matches.
    recording = b.recorder.pcm()
    assert match(welcome[: 8000 * 2 // 4], recording).score >= 0.95
    assert match(welcome[-8000 * 2 :], recording).score >= 0.95


async def test_barge_in_stops_the_prompt_within_a_frame(sessions: Opener, welcome: bytes) -> None:
    a, b = await connected(sessions)
    b.recorder = Recorder()
    await asyncio.sleep(0.1)
    playing = a.player.play(welcome)
    await asyncio.sleep(1.0)
    a.player.stop()
    frames_played = playing.position
    assert await playing is False
    await asyncio.sleep(0.4)

    recording = b.recorder.pcm()
    played = welcome[: frames_played * 320]
    heard = match(played, recording)
    # What was played before the stop is the prompt's beginning...
    assert heard.score >= 0.99
    cut = (heard.offset + frames_played * 160) * 2
    # ...and from the next frame on, silence only.
    assert peak(recording[cut + 320 :]) == 0
    assert len(recording) > cut + 320 * 10  # silence went on being sent


async def test_a_pause_is_silence_of_its_length(sessions: Opener, welcome: bytes) -> None:
    a, b = await connected(sessions)
    b.recorder = Recorder()
    one, two = welcome[:8000], welcome[8000:16000]  # 0.5 s each
    a.player.play(one)
    a.player.pause(1.0)
    await a.player.play(two)
    await settle()
    recording = b.recorder.pcm()
    # The second part starts 0.5 s (the first) + 1 s (the pause) after the first.
    assert match(two, recording).offset - match(one, recording).offset == 12000


async def test_garbage_and_strangers_are_counted_and_dropped(
    sessions: Opener, welcome: bytes
) -> None:
    a, b = await connected(sessions)
    b.recorder = Recorder()
    await asyncio.sleep(0.1)  # b has latched to a
    playing = a.player.play(welcome)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    noise = RtpPacket(0, 1, 1, 0xBAD, bytes(range(160))).encode()
    try:
        rng = random.Random(7)
        for i in range(50):
            # Garbage: RTP version 0 or 1, or shorter than a header.
            first = rng.randrange(0x80).to_bytes(1, "big")
            attacker.sendto(first + rng.randbytes(rng.randrange(40)), b.local_address)
            attacker.sendto(b"\x80" * 4000, b.local_address)  # oversize
            attacker.sendto(noise, b.local_address)  # valid RTP from a stranger
            if i % 10 == 0:
                await asyncio.sleep(0.02)
        # And from a's own address (a's socket), packets a never meant:
        assert a._transport is not None
        cn = RtpPacket(13, 1, 1, 1, b"\x40").encode()
        unknown = RtpPacket(96, 1, 1, 1, b"x" * 160).encode()
        for i in range(20):
            stray = RtpPacket(0, i * 7, i * 999, rng.getrandbits(32), b"\x00" * 160).encode()
            for data in (cn, unknown, stray):
                a._transport.sendto(data, b.local_address)
            await asyncio.sleep(0.005)
    finally:
        attacker.close()
    await playing
    await settle()

    stats = b.stats
    assert stats.oversize == 50
    assert stats.foreign == 50
    assert stats.garbage == 50
    assert stats.ignored >= 40  # comfort noise and the unknown payload type
    assert stats.wrong_ssrc == 20
    assert b.remote == a.local_address  # nobody hijacked the latch
    assert match(welcome, b.recorder.pcm()).score >= 0.99


async def test_a_new_stream_from_the_peer_is_followed(sessions: Opener, welcome: bytes) -> None:
    # After a transfer the same address may send a new SSRC: after a few packets in
    # sequence, the new stream is the one recorded.
    a = await sessions(send_silence=False)  # sends nothing but what it plays
    b = await sessions(remote=a.local_address)
    a.update(remote=b.local_address)
    b.recorder = Recorder()
    await a.player.play(welcome[:8000])
    await settle()
    assert a._transport is not None
    for i in range(10):
        audio = Codec.PCMU.encode(welcome[8000 + 320 * i : 8000 + 320 * (i + 1)])
        packet = RtpPacket(0, 100 + i, 5000 + 160 * i, 0x5EED, audio)
        a._transport.sendto(packet.encode(), b.local_address)
    await settle()
    assert b.stats.wrong_ssrc == 3  # probation: the fourth in sequence is adopted
    # The new stream (from its first packet adopted) continues where the old one ended.
    assert match(welcome[8000 + 320 * 3 : 8000 + 3200], b.recorder.pcm()).offset == 4000


async def test_port_range_exhaustion_is_a_clear_error(sessions: Opener) -> None:
    port = free_port()
    while port % 2:
        port = free_port()
    pool = PortPool(port, port)
    first = await sessions(ports=pool)
    assert first.local_address[1] == port
    with pytest.raises(MediaError) as error:
        await sessions(ports=pool)
    assert error.value.code == "ports_exhausted"
    assert f"{port}-{port}" in error.value.message
    first.close()
    await asyncio.sleep(0)  # the socket closes on the loop's next iteration
    again = await sessions(ports=pool)
    assert again.local_address[1] == port
    assert pool.in_use == 1


async def test_ports_are_even_within_the_range_and_skip_busy_ones(sessions: Opener) -> None:
    low = free_port()
    while low % 2:
        low = free_port()
    # Someone else holds the first port of the range.
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", low))
    try:
        pool = PortPool(low - 1, low + 6)  # 2N-1 rounds up to the even 2N
        opened = [await sessions(ports=pool) for _ in range(3)]
        assert sorted(s.local_address[1] for s in opened) == [low + 2, low + 4, low + 6]
    finally:
        squatter.close()


def test_a_port_range_must_make_sense() -> None:
    with pytest.raises(ValueError):
        PortPool(30000, 20000)
    with pytest.raises(ValueError):
        PortPool(80, 100)
    assert PortPool(20001, 20005).size == 2  # 20002, 20004


async def test_close_resolves_pending_digits_and_stops_sending(sessions: Opener) -> None:
    a, b = await connected(sessions)
    sending = asyncio.ensure_future(a.send_digits("123456789"))
    await asyncio.sleep(0.1)
    a.close()
    with pytest.raises(MediaError) as error:
        await sending
    assert error.value.code == "closed"
    await asyncio.sleep(0.05)  # b reads what was in flight
    count = b.stats.packets_received
    await asyncio.sleep(0.1)
    assert b.stats.packets_received == count


@given(st.lists(st.binary(max_size=1600), max_size=20), st.booleans())
def test_no_datagram_can_break_a_session(datagrams: list[bytes], rtp_shaped: bool) -> None:
    # The invariant behind "bad media is harmless": whatever arrives is accepted or counted
    # as dropped, and never raises out of the protocol callback.
    session = RtpSession(Codec.PCMU, 101, None, MediaClock(), send_silence=True)
    session.recorder = Recorder(max_seconds=1)
    for data in datagrams:
        if rtp_shaped and len(data) >= 2:
            data = b"\x80" + bytes([data[0] & 0x7F if data[0] % 3 else 101]) + data[2:]
        session.datagram_received(data, ("127.0.0.1", 4000))
    stats = session.stats
    assert stats.packets_received + stats.dropped == len(datagrams)


async def test_sipps_30_ms_capture_sent_in_bursts_lands_on_its_timeline(
    sessions: Opener,
) -> None:
    # sipp's g711a.pcap: PCMA in 30 ms packets (240 samples), another SSRC than anything of
    # ours. Sent in bursts far faster than real time, it must still record as 30 ms apiece.
    packets = sipp_capture("g711a.pcap")
    b = await sessions(codec=Codec.PCMA)
    b.recorder = Recorder()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    source = sender.getsockname()
    try:
        for start in range(0, len(packets), 40):
            for data in packets[start : start + 40]:
                sender.sendto(data, b.local_address)
            await asyncio.sleep(0.02)
    finally:
        sender.close()
    await settle()
    first, last = parse(packets[0]), parse(packets[-1])
    samples = (last.timestamp - first.timestamp) % 2**32 + len(last.payload)
    assert b.stats.packets_received == len(packets)
    assert len(b.recorder.pcm()) == samples * 2
    assert b.remote == source
