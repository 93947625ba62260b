"""A handset calls an account's number: the number's Plivo or RCML voice app runs on the call,
with the requests and the status callback each platform's SDK validates."""

from __future__ import annotations

import io
import wave
from urllib.parse import urlsplit

import plivo.utils
from twilio.request_validator import RequestValidator

from tests.conftest import AppHit, AppServer, LiveVerbal, WebhookReceiver, wait_until
from tests.engine.helpers import header, wait_for_texts
from tests.voice.helpers import APP_NUMBER, best_correlation, ended_call, recording, spoken
from verbal.dialects.plivo import call_uuid

CALLER = "+15550002004"


def dial(verbal: LiveVerbal, to: str = APP_NUMBER, **more: object) -> str:
    with verbal.http() as http:
        response = http.post(f"/sandbox/handsets/{CALLER}/calls", json={"to": to, **more})
    assert response.status_code == 201, response.text
    return str(response.json()["call_sid"])


def plivo_valid(verbal: LiveVerbal, hit: AppHit) -> bool:
    nonce = header(hit.headers, "X-Plivo-Signature-V3-Nonce")
    signature = header(hit.headers, "X-Plivo-Signature-V3")
    return bool(
        plivo.utils.validate_v3_signature(
            hit.method, hit.url, nonce, verbal.auth_token, signature, hit.form
        )
    )


def test_a_plivo_app_answers_with_early_media_speech_a_text_and_a_hangup(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    document = (
        "<Response><PreAnswer><Speak>Please wait</Speak></PreAnswer>"
        '<Speak loop="2">Hi there</Speak>'
        f'<Message src="{APP_NUMBER}" dst="{CALLER}">Thanks for calling</Message>'
        '<Hangup reason="rejected"/><Speak>never said</Speak></Response>'
    )
    app_server.routes["/answer"] = lambda hit: (200, "application/xml", document)
    app_server.routes["/hangup"] = lambda hit: (200, "text/plain", "")
    verbal.add_app(
        "plivo",
        app_server.url("/sms"),
        APP_NUMBER,
        voice_url=app_server.url("/answer"),
        status_callback=app_server.url("/hangup"),
    )
    sid = dial(verbal)

    heard = ended_call(verbal, CALLER, sid)
    assert [(h["kind"], h["detail"], h["early"]) for h in heard["heard"]] == [
        ("speech", "Please wait", True),
        ("speech", "Hi there", False),
        ("speech", "Hi there", False),
    ]
    assert heard["status"] == "completed" and heard["cause"] == "app hung up"
    [text] = wait_for_texts(verbal, CALLER, 1)
    assert (text["body"], text["from"]) == ("Thanks for calling", APP_NUMBER)

    [answer] = app_server.hits_for("/answer")
    form = answer.form
    assert form["CallUUID"] == call_uuid(sid)
    assert (form["From"], form["To"]) == (CALLER.lstrip("+"), APP_NUMBER.lstrip("+"))
    assert (form["CallStatus"], form["Direction"], form["Event"]) == (
        "ringing",
        "inbound",
        "StartApp",
    )
    assert "HangupCause" not in form and "ALegUUID" not in form
    assert plivo_valid(verbal, answer)

    [hangup] = wait_until(lambda: app_server.hits_for("/hangup"), what="the hangup URL")
    form = hangup.form
    assert (form["CallUUID"], form["CallStatus"], form["Event"]) == (
        call_uuid(sid),
        "completed",
        "Hangup",
    )
    assert form["HangupCause"] == "NORMAL_CLEARING"
    assert int(form["Duration"]) >= 1 and form["BillDuration"] == form["Duration"]
    assert plivo_valid(verbal, hangup)
    # A wrong token does not validate.
    assert not plivo.utils.validate_v3_signature(
        hangup.method,
        hangup.url,
        header(hangup.headers, "X-Plivo-Signature-V3-Nonce"),
        "0" * 40,
        header(hangup.headers, "X-Plivo-Signature-V3"),
        hangup.form,
    )


def test_a_plivo_hangup_with_a_reason_before_answering_refuses_the_call(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/answer"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Hangup reason="busy"/></Response>',
    )
    verbal.add_app("plivo", app_server.url("/sms"), APP_NUMBER, voice_url=app_server.url("/answer"))
    heard = ended_call(verbal, CALLER, dial(verbal))
    assert (heard["status"], heard["cause"], heard["answered_at"]) == ("busy", "busy", None)


def test_an_rcml_app_plays_audio_pauses_texts_and_redirects(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    tone = spoken("This is a recorded announcement")
    wav = io.BytesIO()
    with wave.open(wav, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes(tone)
    app_server.routes["/announcement.wav"] = lambda hit: (200, "audio/wav", wav.getvalue())
    app_server.routes["/voice"] = lambda hit: (
        200,
        "text/xml",
        "<Response><Play>/announcement.wav</Play><Sms>Your code is 1234</Sms>"
        "<Redirect>/second</Redirect></Response>",
    )
    app_server.routes["/second"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Pause length="1"/><Say>Goodbye</Say></Response>',
    )
    verbal.add_app(
        "rcml",
        app_server.url("/sms"),
        APP_NUMBER,
        voice_url=app_server.url("/voice"),
        status_callback=receiver.url("/call-status"),
    )
    sid = dial(verbal)

    heard = ended_call(verbal, CALLER, sid)
    assert [(h["kind"], h["detail"]) for h in heard["heard"]] == [
        ("audio", app_server.url("/announcement.wav")),
        ("silence", "1"),
        ("speech", "Goodbye"),
    ]
    # The document ran out: Verbal hangs up, as Twilio does.
    assert heard["cause"] == "the document ended"
    samples = recording(verbal, sid)
    assert best_correlation(samples, tone) >= 0.99
    [text] = wait_for_texts(verbal, CALLER, 1)
    assert (text["body"], text["from"]) == ("Your code is 1234", APP_NUMBER)

    validator = RequestValidator(verbal.auth_token)
    first, second = app_server.hits_for("/voice")[0], app_server.hits_for("/second")[0]
    assert (first.form["CallStatus"], first.form["Direction"]) == ("ringing", "inbound")
    assert second.form["CallStatus"] == "in-progress"  # answered by the Play
    for hit in (first, second):
        assert hit.form["CallSid"] == sid
        assert (hit.form["From"], hit.form["To"]) == (CALLER, APP_NUMBER)
        assert validator.validate(hit.url, hit.form, hit.headers["X-Twilio-Signature"])
    [completed] = receiver.wait_for(lambda rs: len(rs) >= 1)
    assert completed.params["CallStatus"] == "completed"
    assert completed.params["Direction"] == "inbound"
    assert validator.validate(
        completed.url, completed.params, completed.headers["X-Twilio-Signature"]
    )
    assert urlsplit(completed.url).path == "/call-status"


def test_reject_busy_and_a_caller_who_hangs_up(verbal: LiveVerbal, app_server: AppServer) -> None:
    app_server.routes["/voice"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Reject reason="busy"/><Say>never</Say></Response>',
    )
    app_server.routes["/long"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Say>One</Say><Pause length="20"/><Say>never</Say></Response>',
    )
    application = verbal.add_app(
        "rcml", app_server.url("/sms"), APP_NUMBER, voice_url=app_server.url("/voice")
    )
    rejected = ended_call(verbal, CALLER, dial(verbal))
    assert (rejected["status"], rejected["cause"], rejected["heard"]) == ("busy", "busy", [])

    async def long_document(runtime: object) -> None:
        application.voice_url = app_server.url("/long")
        async with runtime.sessions.begin() as session:  # type: ignore[attr-defined]
            await session.merge(application)

    verbal.call(long_document)
    sid = dial(verbal, hangup_after_seconds=2)
    hung_up = ended_call(verbal, CALLER, sid)
    assert (hung_up["status"], hung_up["cause"]) == ("completed", "caller hung up")
    details = [h["detail"] for h in hung_up["heard"]]
    assert details[:2] == ["One", "20"] and "never" not in details
    call = wait_until(lambda: (c := verbal.twilio().calls(sid).fetch()).end_time and c)
    assert call.status == "completed" and 1 <= int(call.duration) <= 4


def test_a_number_without_a_voice_app_refuses_calls(verbal: LiveVerbal) -> None:
    heard = ended_call(verbal, CALLER, dial(verbal))
    assert (heard["status"], heard["cause"]) == ("busy", "rejected")
