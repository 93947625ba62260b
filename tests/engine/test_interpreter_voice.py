"""The interpreter on a call, driven by hand: the call actions a step yields, in order, and
what it does with the driver's answers (the call still up, or hung up by the far end)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tests.engine.test_interpreter import APP, NOW, document, finish, new_session
from verbal.dialects import DIALECTS
from verbal.dialects.detect import detect
from verbal.dialects.types import CallFacts
from verbal.dialects.verbs import Say
from verbal.engine.fetch import Fetched
from verbal.engine.interpreter import (
    Dial,
    Dialed,
    EndCall,
    Fetch,
    NextStep,
    Send,
    SessionState,
    Silence,
    Speak,
    Step,
)

CALL = CallFacts(
    sid="CA" + "1" * 32,
    account_sid=APP.account_sid,
    from_number="+15550002000",
    to_number="+15550001000",
    status="ringing",
    direction="inbound",
    created_at=datetime(2026, 12, 7, tzinfo=UTC),
)
VOICE_APP = replace(
    APP, voice_url="http://app.example/voice", voice_method="GET", call=lambda: CALL
)


def on_call(dialect: str = "tropo") -> SessionState:
    return new_session(dialect=dialect, channel="voice", call_sid=CALL.sid, initial_text=None)


def step(state: SessionState) -> tuple[Step, Generator[Any, Any, NextStep | None]]:
    interpreter = Step(state, VOICE_APP, DIALECTS, detect, lambda: NOW)
    return interpreter, interpreter.run()


def xml(url: str, body: str) -> Fetched:
    return Fetched(url, 200, "text/xml", body.encode(), 1.0)


def test_a_call_session_starts_at_the_voice_url_with_the_calls_parameters() -> None:
    state = on_call("rcml")
    _, run = step(state)
    start = next(run)
    assert isinstance(start, Fetch)
    assert start.request.method == "GET"
    assert start.request.wire_url.startswith("http://app.example/voice?")
    form = dict(start.request.form)
    assert (form["CallSid"], form["CallStatus"], form["Direction"]) == (
        CALL.sid,
        "ringing",
        "inbound",
    )
    said = run.send(
        xml(
            "http://app.example/voice",
            '<Response><Say voice="man" loop="2">Hi</Say><Play>/a.wav</Play>'
            '<Pause length="4"/><Hangup/><Say>never</Say></Response>',
        )
    )
    assert said == Speak((Say("Hi", speech_only=True, voice="man", loop=2),))
    played = run.send(True)
    assert played == Speak((Say("", speech_only=True, audio=("http://app.example/a.wav",)),))
    # A pause on a call is silence on the call, whatever its length: no step for it.
    assert run.send(True) == Silence(4)
    assert run.send(True) == EndCall("hangup")
    assert finish(run, None) is None
    assert (state.state, state.end_reason) == ("ended", "the app hung up")


def test_a_caller_hanging_up_runs_the_tropo_hangup_handler() -> None:
    state = on_call()
    interpreter, run = step(state)
    next(run)
    said = run.send(
        document(
            "http://app.example/voice",
            {"say": {"value": "a long story"}},
            {"say": {"value": "never heard"}},
            {"on": {"event": "hangup", "next": "/gone"}},
        )
    )
    assert isinstance(said, Speak)
    gone = run.send(False)  # the caller hung up during the story
    assert isinstance(gone, Fetch) and gone.request.url == "http://app.example/gone"
    assert gone.request.json is not None
    assert gone.request.json["result"]["state"] == "DISCONNECTED"
    assert gone.request.json["result"]["callId"] == CALL.sid[2:]
    finish(run, document("http://app.example/gone"))
    assert ("hangup", {"by": "caller", "verb_index": 0}) in interpreter.events


def test_plivo_preanswer_plays_early_then_a_scheduled_hangup_lets_the_document_go_on() -> None:
    state = on_call("plivo")
    _, run = step(state)
    next(run)
    early = run.send(
        xml(
            "http://app.example/voice",
            '<Response><PreAnswer><Speak>Wait</Speak><Wait length="1"/></PreAnswer>'
            '<Hangup schedule="60"/><Speak>Hello</Speak></Response>',
        )
    )
    assert early == Speak((Say("Wait", speech_only=True),), early=True)
    assert run.send(True) == Silence(1.0, early=True)
    assert run.send(True) == EndCall("hangup", after_seconds=60.0)
    assert run.send(None) == Speak((Say("Hello", speech_only=True),))
    assert finish(run, True) is None
    assert state.end_reason == "the document ended"


def test_reject_and_deflect_end_the_call_unanswered() -> None:
    state = on_call("rcml")
    _, run = step(state)
    next(run)
    rejected = run.send(xml("http://x/voice", '<Response><Reject reason="busy"/></Response>'))
    assert rejected == EndCall("reject", reason="busy")
    finish(run, None)
    assert state.state == "ended"

    state = on_call()
    _, run = step(state)
    next(run)
    deflected = run.send(document("http://x/voice", {"redirect": {"to": "sip:desk@example.com"}}))
    assert deflected == EndCall("deflect", to="sip:desk@example.com")
    finish(run, None)
    assert state.end_reason == "the call was redirected to sip:desk@example.com"


def test_an_ask_or_an_unsupported_verb_on_a_call_is_a_coded_error() -> None:
    state = on_call("rcml")
    interpreter, run = step(state)
    next(run)
    said = run.send(xml("http://x/voice", "<Response><Gather/><Say>still here</Say></Response>"))
    assert said == Speak((Say("still here", speech_only=True),))
    finish(run, True)
    [error] = [d for kind, d in interpreter.events if kind == "error"]
    assert error["code"] == 14110 and "'gather' is not supported on calls yet" in error["message"]


def test_a_voice_message_dials_everyone_and_reports_the_winner() -> None:
    state = new_session(launch="token", initial_text=None, remote_number=None)
    interpreter, run = step(state)
    next(run)
    dial = run.send(
        document(
            APP.sms_url or "",
            {
                "message": {
                    "to": ["tel:+15550002001", "+15550002002"],
                    "from": "+15550001000",
                    "say": [{"value": "Hi"}, {"value": "http://x/tone.wav"}],
                    "channel": "VOICE",
                    "name": "m",
                }
            },
            {"on": {"event": "continue", "next": "/done"}},
        )
    )
    assert dial == Dial(
        ("+15550002001", "+15550002002"),
        "+15550001000",
        says=(Say("Hi", audio=("http://x/tone.wav",)),),
        timeout_seconds=30.0,
    )
    done = run.send(Dialed("answered", "CA" + "2" * 32, "+15550002002"))
    assert isinstance(done, Fetch)
    assert done.request.json is not None
    action = done.request.json["result"]["actions"]
    assert (action["name"], action["disposition"], action["value"]) == (
        "m",
        "SUCCESS",
        "CA" + "2" * 32,
    )
    assert state.call_sid is None  # a message's call is not the session's
    assert ("call", {"status": "answered", "call_sid": "CA" + "2" * 32, "to": "+15550002002"}) in (
        interpreter.events
    )


def test_a_voice_call_becomes_the_sessions_and_its_says_speak() -> None:
    state = new_session(launch="token", initial_text=None, remote_number=None)
    _, run = step(state)
    next(run)
    dial = run.send(
        document(
            APP.sms_url or "",
            {"call": {"to": "+15550002001", "from": "+15550001000", "network": "PSTN"}},
            {"say": {"value": "You were called"}},
            {"message": {"to": "+15550002001", "say": "and texted", "network": "SMS"}},
        )
    )
    assert dial == Dial(("+15550002001",), "+15550001000", keep=True)
    said = run.send(Dialed("answered", "CA" + "3" * 32, "+15550002001"))
    assert said == Speak((Say("You were called"),))
    assert state.call_sid == "CA" + "3" * 32 and state.remote_number == "+15550002001"
    texted = run.send(True)
    assert isinstance(texted, Send) and texted.requests[0].body == "and texted"
    assert finish(run, ["SM1"]) is None
