"""Calls over SIP trunks (`verbal/voice/sip.py`) against real peers.

Tropo's `message` on the voice channel rings every destination at once; the first to answer
hears the text and the others are cancelled (`legs.first_to_answer`). Here the destinations
are reached through two trunks: a sipp that rings until it is cancelled, and baresip, a real
phone that answers and records what it hears. The phone's recording must hold the prompt
(cross-correlation of 0.9 or better); sipp must have seen the CANCEL (its scenario ends
successfully only after CANCEL, 200, 487, ACK). A busy trunk gives the busy status.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.carriers.sip.peers import Baresip, Sipp, need
from tests.media.audio import correlation
from verbal.carriers.sip.transport import Endpoint
from verbal.carriers.sip.useragent import UserAgent
from verbal.media.prompts import synthesise
from verbal.voice.legs import LegStatus, Prompt, first_to_answer
from verbal.voice.sip import SipLines, SipTrunk

pytestmark = pytest.mark.peers

OURS = "+15550001000"
PHONE = "+15550008000"
RINGER = "+15550009000"
TEXT = "Your order has shipped. It will arrive on Thursday."


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    agent = UserAgent(Endpoint("127.0.0.1", 0, "udp"))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.close()


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Baresip]:
    need("espeak-ng")
    baresip = Baresip(tmp_path, user=PHONE, record=True)
    try:
        yield await baresip.start()
    finally:
        await baresip.stop()


def lines_for(ua: UserAgent, trunks: list[SipTrunk], prompts: dict[str, bytes]) -> SipLines:
    async def render(prompt: Prompt) -> bytes | None:
        return prompts.get(prompt.text)

    return SipLines(ua, trunks, render)


async def test_the_first_to_answer_hears_the_text_and_the_other_is_cancelled(
    ua: UserAgent, phone: Baresip, tmp_path: Path
) -> None:
    ringer = await Sipp("uas_ring_until_cancel", tmp_path, timeout=30).start()
    try:
        spoken = await synthesise(TEXT)
        trunks = [
            SipTrunk("phones", "127.0.0.1", phone.port, prefixes=(PHONE,)),
            SipTrunk("ringers", "127.0.0.1", ringer.port, prefixes=(RINGER,)),
        ]
        lines = lines_for(ua, trunks, {TEXT: spoken})
        legs = [
            lines.originate("AC1", OURS, RINGER, "CA1"),
            lines.originate("AC1", OURS, PHONE, "CA2"),
        ]
        seen: list[LegStatus] = []
        legs[1].listen(lambda event: seen.append(event.status))
        winner, outcomes = await asyncio.wait_for(first_to_answer(legs, 20), 30)
        assert winner is legs[1]
        assert outcomes == [LegStatus.CANCELED, LegStatus.IN_PROGRESS]
        assert await ringer.wait() == 0, ringer.report()
        assert await asyncio.wait_for(winner.play(Prompt(text=TEXT)), 30)
        await asyncio.sleep(0.3)
        await winner.hangup()
        ended = await winner.ended()
        assert (ended.status, ended.cause) == (LegStatus.COMPLETED, "app hung up")
        assert seen[-2:] == [LegStatus.IN_PROGRESS, LegStatus.COMPLETED]
        await phone.event("CALL_CLOSED")
        await lines.stop()
    finally:
        await ringer.stop()
    [recording] = phone.heard()
    with wave.open(str(recording), "rb") as heard:
        pcm = heard.readframes(heard.getnframes())
    assert correlation(spoken, pcm) >= 0.9


async def test_a_busy_trunk_makes_a_busy_leg_and_a_dead_one_gives_way(
    ua: UserAgent, tmp_path: Path
) -> None:
    busy = await Sipp(
        "uas_refuse", tmp_path, timeout=20, values={"STATUS": "486", "REASON": "Busy Here"}
    ).start()
    try:
        dead = SipTrunk("dead", "127.0.0.1", 9, prefixes=(RINGER,))  # nobody listens on 9
        live = SipTrunk("busy", "127.0.0.1", busy.port, prefixes=("+1",))
        lines = lines_for(ua, [dead, live], {})
        assert [t.name for t in lines.trunks_for(RINGER)] == ["dead", "busy"]
        leg = lines.originate("AC1", OURS, RINGER, "CA3")
        assert await asyncio.wait_for(leg.ring(20), 40) == LegStatus.BUSY
        assert (await leg.ended()).cause == "busy"
        assert await busy.wait() == 0, busy.report()
    finally:
        await busy.stop()
