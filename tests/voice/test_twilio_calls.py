"""Twilio's Calls API driven by the unmodified `twilio` SDK: a call placed to a sandbox
handset runs its TwiML, the handset hears it, and the status callbacks validate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.conftest import AppServer, LiveVerbal, WebhookReceiver, wait_until
from tests.voice.helpers import (
    APP_NUMBER,
    HANDSET,
    best_correlation,
    ended_call,
    recording,
    spoken,
)

GREETING = "Hello from Verbal, this is a test call."
TWIML = f'<Response><Say voice="woman">{GREETING}</Say><Pause length="1"/><Hangup/></Response>'


def test_a_call_placed_with_the_sdk_reaches_a_handset_and_reports_every_event(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    app_server.routes["/voice"] = lambda hit: (200, "text/xml", TWIML)
    client = verbal.twilio()
    call = client.calls.create(
        to=HANDSET,
        from_=APP_NUMBER,
        url=app_server.url("/voice"),
        status_callback=receiver.url("/call-status"),
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert (call.to, call._from, call.direction) == (HANDSET, APP_NUMBER, "outbound-api")
    assert call.status in ("queued", "ringing", "in-progress")
    assert call.account_sid == verbal.account_sid

    callbacks = receiver.wait_for(
        lambda rs: any(r.params.get("CallStatus") == "completed" for r in rs), timeout=30
    )
    assert [r.params["CallStatus"] for r in callbacks] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [r.params["SequenceNumber"] for r in callbacks] == ["0", "1", "2", "3"]
    validator = RequestValidator(verbal.auth_token)
    for request in callbacks:
        assert validator.validate(
            request.url, request.params, request.headers["X-Twilio-Signature"]
        )
        params = request.params
        assert params["CallSid"] == call.sid
        assert params["AccountSid"] == verbal.account_sid
        assert (params["From"], params["To"]) == (APP_NUMBER, HANDSET)
        assert (params["Caller"], params["Called"]) == (APP_NUMBER, HANDSET)
        assert params["Direction"] == "outbound-api"
        assert params["ApiVersion"] == "2010-04-01"
        assert params["CallbackSource"] == "call-progress-events"
        assert params["Timestamp"].endswith("+0000")
    completed = callbacks[-1].params
    # The greeting (about 3 s) and the pause (1 s) were heard: the call lasted that long.
    assert 3 <= int(completed["CallDuration"]) <= 8, completed
    assert completed["Duration"] == "1"  # billed minutes
    assert completed["SipResponseCode"] == "200"
    assert "CallDuration" not in callbacks[2].params
    assert not RequestValidator("0" * 32).validate(
        callbacks[0].url, callbacks[0].params, callbacks[0].headers["X-Twilio-Signature"]
    )

    # The app was asked for its TwiML with the call's parameters, signed.
    [hit] = app_server.hits_for("/voice")
    assert hit.method == "POST"
    form = hit.form
    assert form["CallSid"] == call.sid
    assert form["CallStatus"] == "in-progress"
    assert form["Direction"] == "outbound-api"
    assert (form["From"], form["To"]) == (APP_NUMBER, HANDSET)
    assert form["AccountSid"] == verbal.account_sid
    assert form["ToCountry"] == "US"
    assert validator.validate(hit.url, form, hit.headers["X-Twilio-Signature"])

    # The handset heard the greeting, then a second of silence, and the call was hung up.
    heard = ended_call(verbal, HANDSET, call.sid)
    assert heard["direction"] == "incoming" and heard["other"] == APP_NUMBER
    assert [(h["kind"], h["detail"]) for h in heard["heard"]] == [
        ("speech", GREETING),
        ("silence", "1"),
    ]
    assert heard["cause"] == "app hung up"
    samples = recording(verbal, call.sid)
    assert best_correlation(samples, spoken(GREETING, "woman")) >= 0.9
    # ... in that voice, and not some other sentence.
    assert best_correlation(samples, spoken(GREETING, "man")) < 0.5
    assert best_correlation(samples, spoken("Goodbye and thanks for all the fish")) < 0.5

    fetched = wait_until(
        lambda: (c := client.calls(call.sid).fetch()).status == "completed" and c, timeout=10
    )
    assert fetched.duration == completed["CallDuration"]
    assert fetched.start_time is not None and fetched.end_time is not None
    assert fetched.end_time >= fetched.start_time


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("busy", "busy"), ("decline", "busy"), ("no-answer", "no-answer"), ("fail", "failed")],
)
def test_handset_rules_decide_how_an_unanswered_call_ends(
    verbal: LiveVerbal,
    app_server: AppServer,
    receiver: WebhookReceiver,
    outcome: str,
    status: str,
) -> None:
    with verbal.http() as http:
        rule = {"pattern": HANDSET, "outcome": outcome, "channel": "voice", "delay_seconds": 0.2}
        assert http.post("/sandbox/rules", json=rule).status_code == 201
    app_server.routes["/voice"] = lambda hit: (200, "text/xml", TWIML)
    call = verbal.twilio().calls.create(
        to=HANDSET,
        from_=APP_NUMBER,
        url=app_server.url("/voice"),
        status_callback=receiver.url("/call-status"),
        timeout=1,
    )
    [completed] = receiver.wait_for(lambda rs: len(rs) >= 1, timeout=15)
    assert completed.params["CallStatus"] == status
    assert completed.params["CallDuration"] == "0"
    assert app_server.hits_for("/voice") == []  # unanswered: no TwiML ran
    fetched = wait_until(
        lambda: (c := verbal.twilio().calls(call.sid).fetch()).status == status and c
    )
    assert fetched.start_time is None


def test_a_call_hung_up_through_the_api_and_one_redirected(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    long_wait = '<Response><Say>Please hold</Say><Pause length="30"/></Response>'
    app_server.routes["/hold"] = lambda hit: (200, "text/xml", long_wait)
    client = verbal.twilio()

    def placed() -> str:
        sid = client.calls.create(to=HANDSET, from_=APP_NUMBER, url=app_server.url("/hold")).sid
        wait_until(lambda: client.calls(sid).fetch().status == "in-progress")
        return str(sid)

    first = placed()
    updated = client.calls(first).update(status="completed")
    assert updated.status == "completed"
    assert ended_call(verbal, HANDSET, first)["cause"] == "hung up through the API"

    second = placed()
    client.calls(second).update(twiml="<Response><Say>Changed my mind</Say><Hangup/></Response>")
    heard = ended_call(verbal, HANDSET, second)
    assert [h["detail"] for h in heard["heard"] if h["kind"] == "speech"][-1] == "Changed my mind"
    assert client.calls(second).fetch().status == "completed"

    with pytest.raises(TwilioRestException) as raised:
        client.calls(second).update(url=app_server.url("/hold"))
    assert (raised.value.status, raised.value.code) == (400, 21220)


def test_calls_list_pages_and_filters(verbal: LiveVerbal, app_server: AppServer) -> None:
    app_server.routes["/bye"] = lambda hit: (200, "text/xml", "<Response><Hangup/></Response>")
    client = verbal.twilio()
    others = ["+15550002001", "+15550002002", "+15550002003"]
    sids = [
        client.calls.create(to=to, from_=APP_NUMBER, url=app_server.url("/bye")).sid
        for to in others
    ]
    listed = client.calls.list(page_size=2)
    assert [c.sid for c in listed] == list(reversed(sids))
    assert [c.sid for c in client.calls.list(to=others[1])] == [sids[1]]
    wait_until(lambda: len(client.calls.list(status="completed")) == 3)
    assert client.calls.list(status="busy") == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"to": "not a number"}, 400, 21217),
        ({"from_": "+15550009999"}, 400, 21210),
        ({"url": None}, 400, 21205),
        ({"url": "ftp://x/y"}, 400, 21205),
        ({"timeout": 601}, 400, 21216),
        ({"to": "+442079460000"}, 400, 21215),
    ],
)
def test_refused_calls(
    verbal: LiveVerbal, change: dict[str, object], status: int, code: int
) -> None:
    params: dict[str, object] = {"to": HANDSET, "from_": APP_NUMBER, "url": "http://x/voice"}
    params.update(change)
    create: Callable[..., object] = verbal.twilio().calls.create
    with pytest.raises(TwilioRestException) as raised:
        create(**{k: v for k, v in params.items() if v is not None})
    assert (raised.value.status, raised.value.code) == (status, code)


def test_an_unknown_call_is_404(verbal: LiveVerbal) -> None:
    with pytest.raises(TwilioRestException) as raised:
        verbal.twilio().calls("CA" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)
