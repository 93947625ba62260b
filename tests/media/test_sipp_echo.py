"""An RTP session against a real, independent peer: sipp's RTP echo.

`sipp -rtp_echo` sends every datagram that reaches its media port back to where it came
from, with no SIP needed. What our session plays must come back through sipp's socket and
land in our recording intact: the packets are well-formed enough for a real RTP stack, the
session latches to the peer's address, and the recorder places them on the timeline.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media.audio import match
from tests.media.conftest import Opener
from tests.processes import free_port
from verbal.media.g711 import Codec
from verbal.media.recorder import Recorder

SIPP = shutil.which("sipp")


def wait_for_echo(port: int, within: float = 10.0) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    probe.settimeout(0.2)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            probe.sendto(b"probe", ("127.0.0.1", port))
            try:
                if probe.recv(64) == b"probe":
                    return
            except TimeoutError:
                continue
    finally:
        probe.close()
    raise AssertionError(f"sipp did not echo on port {port} within {within} s")


@pytest.fixture
def sipp_echo(tmp_path: Path) -> Iterator[int]:
    """The media port of a sipp UAS that echoes RTP; stopped after the test."""
    if SIPP is None:
        pytest.skip("sipp is not installed (Debian's sip-tester)")
    media = free_port()
    signalling = ["-sn", "uas", "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1"]
    echo = ["-mi", "127.0.0.1", "-mp", str(media), "-rtp_echo"]
    process = subprocess.Popen(
        # Bounded by sipp's own -timeout, and killed after the test.
        [SIPP, *signalling, *echo, "-nostdin", "-timeout", "50s"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_echo(media)
        yield media
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
async def test_sipp_echoes_the_prompt_back_intact(
    sessions: Opener, sipp_echo: int, welcome: bytes, codec: Codec
) -> None:
    session = await sessions(codec=codec, remote=("127.0.0.1", sipp_echo))
    session.recorder = Recorder()
    await session.player.play(welcome)
    await session.send_digits("42#")
    await asyncio.sleep(0.2)

    assert session.latched and session.remote == ("127.0.0.1", sipp_echo)
    assert match(welcome, session.recorder.pcm()).score >= 0.99
    keys = [session.digits.get_nowait() for _ in range(session.digits.qsize())]
    assert keys == ["4", "2", "#"]
    assert session.stats.dropped == 0
