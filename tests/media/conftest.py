"""Fixtures for the media tests: prompts spoken once per run, RTP sessions closed after."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from verbal.media.g711 import Codec
from verbal.media.prompts import read_wav
from verbal.media.session import RtpSession

# sipp's bundled captures (Debian's sip-tester): RTP as a real, independent sender made it.
SIPP_CAPTURES = Path("/usr/share/sip-tester")
WELCOME = "Welcome to Verbal. Please enter your account number."


@pytest.fixture(scope="session")
def welcome() -> bytes:
    """espeak-ng's prompt at 8 kHz: the reference every recording is compared with, made
    without the asyncio path that `synthesise` takes (and that its tests check)."""
    spoken = subprocess.run(
        ["espeak-ng", "--stdout", "-v", "en-us"],
        input=WELCOME.encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    return read_wav(spoken.stdout)


Opener = Callable[..., Awaitable[RtpSession]]


@pytest.fixture
async def sessions() -> AsyncIterator[Opener]:
    """`await sessions(**options)` opens an RTP session on 127.0.0.1, closed after the test."""
    opened: list[RtpSession] = []

    async def open_session(**options: object) -> RtpSession:
        session = await RtpSession.open(**options)  # type: ignore[arg-type]
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


async def connected(sessions: Opener, codec: Codec = Codec.PCMU) -> tuple[RtpSession, RtpSession]:
    """Two sessions that know each other's address, as after an SDP offer and answer."""
    a = await sessions(codec=codec)
    b = await sessions(codec=codec, remote=a.local_address)
    a.update(remote=b.local_address)
    return a, b


def sipp_capture(name: str) -> list[bytes]:
    """The RTP packets (UDP payloads) of one of sipp's captures (Ethernet, IPv4, UDP)."""
    path = SIPP_CAPTURES / name
    if not path.exists():
        pytest.skip("sipp's captures are not installed (Debian's sip-tester)")
    data = path.read_bytes()
    assert struct.unpack_from("<IH", data) == (0xA1B2C3D4, 2)
    packets, offset = [], 24
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        ip = frame[14:]
        packets.append(bytes(ip[(ip[0] & 0x0F) * 4 + 8 :]))
    return packets
