"""Tropo apps on the voice channel: `message` rings several parties and the first to answer
hears it; an inbound call runs the number's voice app with a call's Session JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import AppHit, AppServer, LiveVerbal, wait_until
from tests.voice.helpers import (
    APP_NUMBER,
    best_correlation,
    ended_call,
    handset_calls,
    recording,
    spoken,
)

FAST = "+15550002001"  # answers after half a second
SLOW = "+15550002002"  # would answer after five
NOTICE = "Your order has shipped and will arrive tomorrow."


def tropo(*verbs: dict[str, Any]) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps({"tropo": list(verbs)})


def voice_rule(verbal: LiveVerbal, handset: str, outcome: str, delay: float) -> None:
    with verbal.http() as http:
        rule = {"pattern": handset, "outcome": outcome, "channel": "voice", "delay_seconds": delay}
        assert http.post("/sandbox/rules", json=rule).status_code == 201


def test_a_voice_message_to_two_parties_is_heard_by_the_first_to_answer(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    voice_rule(verbal, FAST, "answer", 0.5)
    voice_rule(verbal, SLOW, "answer", 5.0)
    app_server.routes["/launch"] = lambda hit: tropo(
        {
            "message": {
                "to": [FAST, SLOW],
                "say": {"value": NOTICE},
                "channel": "VOICE",
                "network": "PSTN",
                "timeout": 20,
                "name": "notice",
            }
        },
        {"on": {"event": "continue", "next": "/done"}},
    )
    app_server.routes["/done"] = lambda hit: tropo({"hangup": None})
    application = verbal.add_app("tropo", app_server.url("/launch"), APP_NUMBER)
    launched = httpx.get(
        f"{verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token},
    )
    assert "<success>true</success>" in launched.text

    winner = ended_call(verbal, FAST)
    assert winner["status"] == "completed" and winner["cause"] == "app hung up"
    assert [(h["kind"], h["detail"]) for h in winner["heard"]] == [("speech", NOTICE)]
    assert best_correlation(recording(verbal, winner["call_sid"]), spoken(NOTICE)) >= 0.9

    loser = ended_call(verbal, SLOW)
    assert loser["status"] == "canceled"
    assert loser["cause"] == "another party answered first"
    assert loser["heard"] == [] and loser["answered_at"] is None

    # The message's result reaches the app: its name, SUCCESS, the answered call.
    [done] = wait_until(lambda: app_server.hits_for("/done"), what="the continue request")
    action = done.json["result"]["actions"]
    assert (action["name"], action["disposition"]) == ("notice", "SUCCESS")
    assert action["value"] == winner["call_sid"]

    # Both calls are on record: one completed, one canceled, neither with a parent.
    client = verbal.twilio()
    calls = wait_until(
        lambda: (
            (c := client.calls.list())
            and all(x.end_time or x.status == "canceled" for x in c)
            and c
        )
    )
    by_sid = {c.sid: c for c in calls}
    assert by_sid[winner["call_sid"]].status == "completed"
    assert by_sid[loser["call_sid"]].status == "canceled"
    assert {c.direction for c in calls} == {"outbound-api"}
    assert {c._from for c in calls} == {APP_NUMBER}


def test_nobody_answering_is_an_error_the_app_can_handle(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    voice_rule(verbal, FAST, "busy", 0.1)
    voice_rule(verbal, SLOW, "no-answer", 0)
    app_server.routes["/launch"] = lambda hit: tropo(
        {"message": {"to": [FAST, SLOW], "say": "Hi", "channel": "VOICE", "timeout": 1}},
        {"on": {"event": "error", "next": "/failed"}},
    )
    app_server.routes["/failed"] = lambda hit: tropo({"hangup": None})
    application = verbal.add_app("tropo", app_server.url("/launch"), APP_NUMBER)
    httpx.get(
        f"{verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token},
    )
    [failed] = wait_until(lambda: app_server.hits_for("/failed"), what="the error request")
    assert "not answered (busy)" in failed.json["result"]["error"]
    assert ended_call(verbal, FAST)["status"] == "busy"
    assert ended_call(verbal, SLOW)["status"] == "no-answer"


def test_an_inbound_call_runs_the_numbers_tropo_voice_app(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    caller = "+15550002003"

    def answer(hit: AppHit) -> tuple[int, str, str]:
        return tropo(
            {"say": [{"value": "Welcome to Verbal."}]},
            {"wait": {"milliseconds": 300}},
            {"hangup": None},
            {"on": {"event": "hangup", "next": "/bye"}},
        )

    app_server.routes["/voice"] = answer
    app_server.routes["/bye"] = lambda hit: tropo()
    verbal.add_app("tropo", app_server.url("/sms"), APP_NUMBER, voice_url=app_server.url("/voice"))
    with verbal.http() as http:
        response = http.post(f"/sandbox/handsets/{caller}/calls", json={"to": APP_NUMBER})
    assert response.status_code == 201, response.text
    sid = response.json()["call_sid"]

    heard = ended_call(verbal, caller, sid)
    assert heard["direction"] == "outgoing" and heard["status"] == "completed"
    assert [(h["kind"], h["detail"]) for h in heard["heard"]] == [
        ("speech", "Welcome to Verbal."),
        ("silence", "0.3"),
    ]
    [hit] = app_server.hits_for("/voice")
    session = hit.json["session"]
    assert session["callId"] == sid[2:]
    assert session["userType"] == "HUMAN" and session["initialText"] is None
    assert session["from"]["id"] == caller.lstrip("+1")  # 10 digits on a call, as Tropo
    assert session["from"]["channel"] == "VOICE" and session["to"]["channel"] == "VOICE"
    assert session["to"]["e164Id"] == APP_NUMBER.lstrip("+")
    [bye] = wait_until(lambda: app_server.hits_for("/bye"), what="the hangup handler")
    assert bye.json["result"]["state"] == "DISCONNECTED"
    assert bye.json["result"]["callId"] == sid[2:]

    call = wait_until(lambda: (c := verbal.twilio().calls(sid).fetch()).end_time and c)
    assert (call.direction, call.status, call._from, call.to) == (
        "inbound",
        "completed",
        caller,
        APP_NUMBER,
    )
    assert handset_calls(verbal, caller)[0]["call_sid"] == sid


def test_the_voice_token_launches_a_session_whose_call_and_message_place_calls(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    # Tropo's outbound voice pattern: `call` with no network, then `say`; then a `message`
    # with no channel, which on the voice token is a call that speaks.
    app_server.routes["/voice"] = lambda hit: tropo(
        {"call": {"to": hit.json["session"]["parameters"]["numberToDial"]}},
        {"say": [{"value": "This is your reminder."}]},
        {"hangup": None},
        {"message": {"to": SLOW, "say": "And a second call."}},
    )
    application = verbal.add_app(
        "tropo", app_server.url("/sms"), APP_NUMBER, voice_url=app_server.url("/voice")
    )
    launched = httpx.post(
        f"{verbal.base_url}/1.0/sessions",
        json={"token": application.voice_token, "numberToDial": FAST},
    )
    assert '"success"' in launched.text or "<success>true</success>" in launched.text

    called = ended_call(verbal, FAST)
    assert (called["direction"], called["other"], called["status"]) == (
        "incoming",
        APP_NUMBER,
        "completed",
    )
    assert [h["detail"] for h in called["heard"]] == ["This is your reminder."]
    assert called["cause"] == "app hung up"
    # The hangup ends the document (no `on` handler): the message after it never runs.
    assert handset_calls(verbal, SLOW) == []
    [hit] = app_server.hits_for("/voice")
    assert hit.json["session"]["parameters"]["numberToDial"] == FAST
    assert hit.json["session"]["callId"] is None  # launched without a call
    with verbal.http() as http:
        [session] = http.get("/verbal/v1/sessions").json()["sessions"]
    assert (session["channel"], session["launch"]) == ("voice", "token")


def test_the_messaging_token_keeps_unnamed_channels_on_text(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/sms"] = lambda hit: tropo({"message": {"to": FAST, "say": "A text"}})
    application = verbal.add_app("tropo", app_server.url("/sms"), APP_NUMBER)
    httpx.get(
        f"{verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token},
    )
    with verbal.http() as http:
        inbox = wait_until(
            lambda: http.get(f"/sandbox/handsets/{FAST}/inbox").json()["messages"],
            what="the text",
        )
    assert inbox[0]["body"] == "A text"
    assert handset_calls(verbal, FAST) == []
