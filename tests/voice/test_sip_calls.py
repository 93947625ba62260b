"""Calls placed with Twilio's SDK go out on a SIP trunk and reach real peers.

The server declares two trunks (`sip_trunks`): one to baresip, a real phone that answers and
records what it hears, and one to a sipp that refuses as busy. A call created through the
unmodified `twilio` SDK with inline TwiML must ring the phone, say the text (the phone's
recording correlates with the synthesised speech at 0.9 or better) and end completed; the
busy trunk's call ends busy. Status callbacks validate with the SDK's `RequestValidator`.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from tests.carriers.sip.peers import Baresip, Sipp, need
from tests.conftest import AppServer, LiveVerbal, WebhookReceiver
from tests.engine.helpers import header
from tests.media.audio import correlation
from verbal.voice import audio

pytestmark = pytest.mark.peers

APP_NUMBER = "+15550001000"
PHONE = "+15550008000"
BUSY = "+15550009000"
GREETING = "Good evening. Your flight to Lisbon leaves from gate twelve."


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Baresip]:
    need("espeak-ng")
    baresip = Baresip(tmp_path, user=PHONE, record=True)
    try:
        yield await baresip.start()
    finally:
        await baresip.stop()


@pytest.fixture
async def busy(tmp_path: Path) -> AsyncIterator[Sipp]:
    sipp = Sipp("uas_refuse", tmp_path, timeout=60, values={"STATUS": "486", "REASON": "Busy"})
    try:
        yield await sipp.start()
    finally:
        await sipp.stop()


@pytest.fixture
def trunked(make_verbal: Callable[..., LiveVerbal], phone: Baresip, busy: Sipp) -> LiveVerbal:
    server = make_verbal(
        sip_trunks=[
            {"name": "phones", "host": "127.0.0.1", "port": phone.port, "prefixes": [PHONE]},
            {"name": "busy", "host": "127.0.0.1", "port": busy.port, "prefixes": [BUSY]},
        ]
    )
    server.add_number(APP_NUMBER)
    return server


async def test_a_call_from_the_sdk_goes_out_on_the_trunk_and_the_phone_hears_it(
    trunked: LiveVerbal, phone: Baresip, receiver: WebhookReceiver
) -> None:
    # The server runs in a thread of its own; the SDK and the waits run beside this loop,
    # which drives the phone's control socket.
    await asyncio.to_thread(_call_and_check, trunked, receiver)
    await phone.event("CALL_CLOSED")
    [recording] = phone.heard()
    with wave.open(str(recording), "rb") as heard:
        pcm = heard.readframes(heard.getnframes())
    assert correlation(await audio.speech(GREETING), pcm) >= 0.9


def _call_and_check(trunked: LiveVerbal, receiver: WebhookReceiver) -> None:
    client = trunked.twilio()
    call = client.calls.create(
        to=PHONE,
        from_=APP_NUMBER,
        twiml=f"<Response><Say>{GREETING}</Say><Hangup/></Response>",
        status_callback=receiver.url("/call-status"),
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    callbacks = receiver.wait_for(
        lambda rs: any(r.params.get("CallStatus") == "completed" for r in rs), timeout=60
    )
    assert [r.params["CallStatus"] for r in callbacks][-2:] == ["in-progress", "completed"]
    validator = RequestValidator(trunked.auth_token)
    for request in callbacks:
        assert validator.validate(
            request.url, request.params, request.headers["X-Twilio-Signature"]
        )
        assert (request.params["CallSid"], request.params["To"]) == (call.sid, PHONE)
    assert client.calls(call.sid).fetch().status == "completed"


async def test_a_busy_answer_on_the_trunk_ends_the_call_busy(
    trunked: LiveVerbal, busy: Sipp, receiver: WebhookReceiver
) -> None:
    await asyncio.to_thread(_busy_call, trunked, receiver)
    assert await busy.wait() == 0, busy.report()


def _busy_call(trunked: LiveVerbal, receiver: WebhookReceiver) -> None:
    client = trunked.twilio()
    call = client.calls.create(
        to=BUSY,
        from_=APP_NUMBER,
        twiml="<Response><Say>Nobody will hear this</Say></Response>",
        status_callback=receiver.url("/busy-status"),
    )
    [final] = receiver.wait_for(lambda rs: len(rs) >= 1, timeout=60)
    assert (final.params["CallSid"], final.params["CallStatus"]) == (call.sid, "busy")
    assert client.calls(call.sid).fetch().status == "busy"


async def test_a_phone_calling_our_number_over_sip_runs_its_voice_app(
    make_verbal: Callable[..., LiveVerbal], phone: Baresip, app_server: AppServer
) -> None:
    server = make_verbal(sip_listen="127.0.0.1:0")
    server.add_number(APP_NUMBER)
    twiml = f"<Response><Say>{GREETING}</Say><Hangup/></Response>"
    app_server.routes["/voice"] = lambda hit: (200, "text/xml", twiml)
    server.add_app("rcml", app_server.url("/sms"), APP_NUMBER, voice_url=app_server.url("/voice"))
    assert server.runtime.sip is not None
    port = server.runtime.sip.ua.bound.port
    await phone.command("dial", f"sip:{APP_NUMBER}@127.0.0.1:{port}")
    await phone.event("CALL_ESTABLISHED", within=20)
    await phone.event("CALL_CLOSED", within=30)  # the app's <Hangup/>
    [hit] = [hit for hit in app_server.hits if hit.path == "/voice"]
    assert (hit.form["From"], hit.form["To"]) == (PHONE, APP_NUMBER)
    assert (hit.form["Direction"], hit.form["CallStatus"]) == ("inbound", "ringing")
    validator = RequestValidator(server.auth_token)
    assert validator.validate(hit.url, hit.form, header(hit.headers, "X-Twilio-Signature"))
    [recording] = phone.heard()
    with wave.open(str(recording), "rb") as heard:
        pcm = heard.readframes(heard.getnframes())
    assert correlation(await audio.speech(GREETING), pcm) >= 0.9


async def test_a_call_for_a_number_that_is_not_ours_is_refused(
    make_verbal: Callable[..., LiveVerbal], phone: Baresip
) -> None:
    server = make_verbal(sip_listen="127.0.0.1:0")
    assert server.runtime.sip is not None
    port = server.runtime.sip.ua.bound.port
    await phone.command("dial", f"sip:+15557770000@127.0.0.1:{port}")
    closed = await phone.event("CALL_CLOSED", within=20)
    assert "603" in str(closed.get("param", "")) or "Decline" in str(closed)
