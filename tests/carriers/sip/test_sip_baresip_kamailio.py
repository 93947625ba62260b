"""Interop with real phones and a real proxy: baresip and kamailio (spec scenarios 4, 10).

baresip runs headless with auto-answer and is driven over its ctrl_tcp socket; kamailio
is the in-memory registrar and record-routing proxy of the voice spec. Calls go both
ways through kamailio, and the in-dialog ACK and BYE must follow its Record-Route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.carriers.sip.conftest import UserAgents
from tests.carriers.sip.peers import Baresip, Kamailio, Sipp
from verbal.carriers.sip import sdp
from verbal.carriers.sip.calls import CallEnd, IncomingCall
from verbal.carriers.sip.transport import Endpoint

pytestmark = pytest.mark.peers

OFFER = sdp.make_offer("127.0.0.1", 40000)
FROM = "sip:+15550001000@verbal.test"


@pytest.fixture
async def baresip(tmp_path: Path) -> AsyncIterator[Baresip]:
    phone = Baresip(tmp_path)
    try:
        yield await phone.start()
    finally:
        await phone.stop()


@pytest.fixture
async def kamailio(tmp_path: Path) -> AsyncIterator[Kamailio]:
    proxy = Kamailio(tmp_path)
    try:
        yield await proxy.start()
    finally:
        await proxy.stop()


async def test_fork_baresip_answers_and_the_ringing_sipp_is_cancelled(
    user_agents: UserAgents, baresip: Baresip, tmp_path: Path
) -> None:
    ua = await user_agents()
    ringing = await Sipp("uas_ring_until_cancel", tmp_path, timeout=20).start()
    try:
        winner = await asyncio.wait_for(
            ua.fork([f"sip:alice@{ringing.uri_host}", baresip.uri], from_uri=FROM, offer=OFFER),
            15,
        )
        assert winner.invite.uri == baresip.uri
        await baresip.event("CALL_ESTABLISHED")
        assert await ringing.wait() == 0, ringing.report()
        await winner.hangup()
        assert await winner.ended == CallEnd("local", 200, "OK")
        await baresip.event("CALL_CLOSED")
    finally:
        await ringing.stop()


async def test_a_call_through_kamailio_follows_its_record_route(
    user_agents: UserAgents, baresip: Baresip, kamailio: Kamailio
) -> None:
    aor = f"sip:bob@127.0.0.1:{kamailio.port}"
    await baresip.command("uanew", f"<{aor}>;regint=60;answermode=auto;audio_codecs=PCMU")
    await baresip.event("REGISTER_OK")
    ua = await user_agents()
    call = await ua.call(
        aor, from_uri=FROM, offer=OFFER, proxy=Endpoint("127.0.0.1", kamailio.port)
    )
    answer = await asyncio.wait_for(call.answered(), 10)
    assert answer.codec == sdp.PCMU
    assert call.dialog is not None
    assert [f"127.0.0.1:{kamailio.port}" in route for route in call.dialog.route_set] == [True]
    await baresip.event("CALL_ESTABLISHED")
    await call.hangup()  # the BYE goes to kamailio, which relays it by loose routing
    assert await call.ended == CallEnd("local", 200, "OK")
    await baresip.event("CALL_CLOSED")
    assert "relaying INVITE" in kamailio.log()


async def test_registered_at_kamailio_the_ua_takes_a_call_from_baresip(
    user_agents: UserAgents, baresip: Baresip, kamailio: Kamailio
) -> None:
    calls: list[IncomingCall] = []

    async def answer(call: IncomingCall) -> None:
        calls.append(call)
        call.answer(sdp.make_answer(call.offer, "127.0.0.1", 40002))

    ua = await user_agents(answer)
    aor = f"sip:verbal@127.0.0.1:{kamailio.port}"
    registration = await ua.register(Endpoint("127.0.0.1", kamailio.port), aor, expires=120)
    assert registration.registered and registration.granted > 0
    await baresip.command("dial", aor)
    await baresip.event("CALL_ESTABLISHED")
    call = calls[0]
    await asyncio.wait_for(asyncio.shield(call.confirmed), 5)
    assert call.dialog is not None
    assert [f"127.0.0.1:{kamailio.port}" in route for route in call.dialog.route_set] == [True]
    await call.hangup()
    assert await call.ended == CallEnd("local", 200, "OK")
    await baresip.event("CALL_CLOSED")
    await registration.unregister()
    assert not registration.registered
