"""Speech over a real call: the "say" half of the voice spec's scenario 1.

Verbal's SIP user agent calls a real phone (baresip, auto-answer), negotiates G.711 with it,
and plays a prompt synthesised by espeak-ng through an RTP session on the shared media clock;
the phone records what it decoded. What it heard must correlate with the prompt at 0.9 or
better, for each law: the whole path (SDP answer to codec, latching, pacing, encoding) is
checked by the far end's ears rather than by our own code.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.carriers.sip.conftest import UserAgents
from tests.carriers.sip.peers import Baresip, need
from tests.media.audio import correlation
from verbal.carriers.sip import sdp
from verbal.carriers.sip.calls import CallEnd
from verbal.media.g711 import Codec
from verbal.media.prompts import synthesise
from verbal.media.session import RtpSession

pytestmark = pytest.mark.peers

PROMPT = "Hello from Verbal. Your table for two is booked at eight tonight."


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Baresip]:
    need("espeak-ng")
    baresip = Baresip(tmp_path, record=True)
    try:
        yield await baresip.start()
    finally:
        await baresip.stop()


def heard(path: Path) -> bytes:
    with wave.open(str(path), "rb") as recording:
        assert (recording.getframerate(), recording.getnchannels()) == (8000, 1)
        assert recording.getsampwidth() == 2
        return recording.readframes(recording.getnframes())


@pytest.mark.parametrize("law", [Codec.PCMU, Codec.PCMA], ids=["pcmu", "pcma"])
async def test_a_phone_hears_the_prompt_verbal_speaks(
    user_agents: UserAgents, phone: Baresip, law: Codec
) -> None:
    ua = await user_agents()
    prompt = await synthesise(PROMPT)
    session = await RtpSession.open()
    try:
        offer = sdp.make_offer("127.0.0.1", session.local_address[1], codecs=(law.value,))
        call = await ua.call(phone.uri, from_uri="sip:+15550001000@verbal.test", offer=offer)
        answer = await asyncio.wait_for(call.answered(), 10)
        assert answer.codec == law.value
        session.update(
            remote=(answer.address, answer.port),
            codec=Codec(answer.codec),
            event_payload_type=answer.telephone_event,
        )
        await phone.event("CALL_ESTABLISHED")
        completed = await asyncio.wait_for(session.player.play(prompt), 30)
        assert completed
        await asyncio.sleep(0.3)  # the last frames reach the phone before the BYE
        await call.hangup()
        assert await call.ended == CallEnd("local", 200, "OK")
        await phone.event("CALL_CLOSED")
    finally:
        session.close()
    [recording] = phone.heard()
    score = correlation(prompt, heard(recording))
    assert score >= 0.9, f"the phone heard the prompt at {score:.3f}"
