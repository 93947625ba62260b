"""RCML/TwiML messaging apps on Verbal, end to end.

Real app servers on loopback answer with documents made by Twilio's own generators
(`MessagingResponse`, `VoiceResponse`); sandbox handsets text the app's number and read
their inboxes; apps check what they receive with Twilio's own `RequestValidator`. The only
hand-written documents are seed 003's two RCML `<Message>` examples, reproduced verbatim
(with real numbers and a real callback URL in the second).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import Body, Media, Message, MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from tests.conftest import (
    AppHit,
    AppServer,
    LiveVerbal,
    ReceivedRequest,
    WebhookReceiver,
    wait_until,
)
from tests.engine.helpers import header, inbox, text_app, wait_for_texts
from verbal.store.models import Session as SessionRow

APP_NUMBER = "+15550001000"
HANDSET = "+15550002000"
OTHER_HANDSET = "+15550003000"
FORM = "application/x-www-form-urlencoded"
TWIML_PARAMS = {
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia",
    "NumSegments", "SmsStatus", "ApiVersion",
}  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------


def twiml(response: MessagingResponse | VoiceResponse) -> tuple[int, str, str]:
    """What a Flask/Django TwiML view returns: the SDK's XML as text/xml."""
    return 200, "text/xml", response.to_xml()


def reply(text: str, **attributes: Any) -> tuple[int, str, str]:
    response = MessagingResponse()
    response.message(text, **attributes)
    return twiml(response)


def signed_for(auth_token: str, url: str, params: dict[str, str], signature: str) -> bool:
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def assert_twilio_signed(verbal: LiveVerbal, hit: AppHit | ReceivedRequest) -> None:
    """Check the request as a Twilio app does: the SDK's validator over what arrived."""
    signature = header(hit.headers, "X-Twilio-Signature")
    # A GET signs the URL alone; its query already carries the parameters.
    params = {} if hit.method == "GET" else dict(hit.form)
    assert signed_for(verbal.auth_token, hit.url, params, signature), hit.url
    assert not signed_for(verbal.auth_token + "x", hit.url, params, signature)


def session_of(verbal: LiveVerbal, inbound_sid: str) -> str:
    """The SID of the session an inbound message started (RCML requests do not carry it)."""

    async def find(runtime: Any) -> str | None:
        async with runtime.sessions() as session:
            return await session.scalar(
                select(SessionRow.sid).where(SessionRow.inbound_message_sid == inbound_sid)
            )

    return wait_until(lambda: verbal.call(find), timeout=10, what="the session to start")


def ended_log(verbal: LiveVerbal, session_sid: str) -> dict[str, Any]:
    return wait_until(
        lambda: (log := verbal.session_log(session_sid))["state"] == "ended" and log,
        timeout=10,
        what="the session to end",
    )


def events(log: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in log["events"] if event["kind"] == kind]


# -- inbound text -> app -> reply -------------------------------------------------------------


def test_inbound_text_reaches_the_app_signed_and_its_reply_reaches_the_handset(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/sms"] = lambda hit: reply("Thanks for: " + hit.form["Body"])
    # A query on the app's URL is part of what Twilio signs.
    verbal.add_app("rcml", app_server.url("/sms?tenant=acme"), APP_NUMBER)

    body = 'hello & <there> "you" ✓'
    inbound_sid = text_app(verbal, HANDSET, body)
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Thanks for: " + body
    assert text["from"] == APP_NUMBER and text["to"] == HANDSET
    assert text["media_urls"] == []

    [hit] = app_server.hits_for("/sms")
    assert hit.method == "POST"
    assert hit.url == app_server.url("/sms?tenant=acme")
    assert header(hit.headers, "Content-Type").startswith(FORM)
    params = hit.form
    assert set(params) >= TWIML_PARAMS
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == inbound_sid
    assert inbound_sid.startswith("SM") and len(inbound_sid) == 34
    assert params["AccountSid"] == verbal.account_sid
    assert params["From"] == HANDSET
    assert params["To"] == APP_NUMBER
    assert params["Body"] == body
    assert params["NumMedia"] == "0"
    assert params["NumSegments"] == "1"
    assert params["SmsStatus"] == "received"
    assert params["ApiVersion"] == "2010-04-01"
    assert not any(name.startswith("MediaUrl") for name in params)
    assert_twilio_signed(verbal, hit)

    # The message the app was told about is the one the Messages API lists as inbound.
    client = verbal.twilio()
    [listed] = [m for m in client.messages.list(to=APP_NUMBER) if m.sid == inbound_sid]
    assert listed.direction == "inbound"
    assert (listed.from_, listed.to, listed.body) == (HANDSET, APP_NUMBER, body)
    sent = client.messages(text["message_sid"]).fetch()
    assert sent.direction == "outbound-reply"
    assert (sent.from_, sent.to, sent.body) == (APP_NUMBER, HANDSET, "Thanks for: " + body)


def test_a_get_app_gets_the_parameters_in_the_query_and_a_signature_over_the_url(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/sms"] = lambda hit: reply("Thanks for: " + hit.form["Body"])
    verbal.add_app("rcml", app_server.url("/sms?tenant=acme"), APP_NUMBER, sms_method="GET")

    media = ("https://example.com/cat.jpg", "https://example.com/clip.mp4")
    inbound_sid = text_app(verbal, HANDSET, "über & more?", media=media)
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Thanks for: über & more?"
    assert text["from"] == APP_NUMBER

    [hit] = app_server.hits_for("/sms")
    assert hit.method == "GET" and hit.body == b""
    params = hit.form  # parsed from the query string
    assert params["tenant"] == "acme"  # the URL's own query is kept
    assert set(params) >= TWIML_PARAMS
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == inbound_sid
    assert (params["From"], params["To"], params["Body"]) == (HANDSET, APP_NUMBER, "über & more?")
    assert (params["AccountSid"], params["SmsStatus"]) == (verbal.account_sid, "received")
    assert params["NumMedia"] == "2"
    assert (params["MediaUrl0"], params["MediaContentType0"]) == (media[0], "image/jpeg")
    assert (params["MediaUrl1"], params["MediaContentType1"]) == (media[1], "video/mp4")
    assert_twilio_signed(verbal, hit)


# -- <Message action method statusCallback> ---------------------------------------------------


@pytest.mark.parametrize(
    ("action", "action_method"),
    [("action", "POST"), ("/action?step=2", "GET")],
    ids=["relative-POST", "absolute-path-GET"],
)
def test_message_action_reports_the_new_message_and_its_status_callback_follows_delivery(
    verbal: LiveVerbal,
    app_server: AppServer,
    receiver: WebhookReceiver,
    action: str,
    action_method: str,
) -> None:
    # Relative action URLs resolve against the document's URL (/app/sms).
    app_server.routes["/app/sms"] = lambda hit: reply(
        "First reply",
        action=action,
        method=action_method,
        status_callback=receiver.url("/status"),
    )
    app_server.routes["/app/action"] = lambda hit: reply(
        f"Second reply, after {hit.form['MessageStatus']}"
    )
    app_server.routes["/action"] = app_server.routes["/app/action"]
    verbal.add_app("rcml", app_server.url("/app/sms"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "go")
    texts = {t["body"]: t for t in wait_for_texts(verbal, HANDSET, 2)}
    first, second = texts["First reply"], texts["Second reply, after queued"]
    assert first["from"] == APP_NUMBER
    reply_sid = first["message_sid"]
    assert reply_sid != inbound_sid

    [hit] = app_server.hits_for("/app/action") + app_server.hits_for("/action")
    assert hit.url.startswith(app_server.url("/app/action" if action == "action" else "/action"))
    assert hit.method == action_method
    params = hit.form
    # The action hears about the message just sent, not the inbound one.
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == reply_sid
    assert params["MessageStatus"] == params["SmsStatus"] == "queued"
    assert params["AccountSid"] == verbal.account_sid
    assert (params["From"], params["To"], params["Body"]) == (HANDSET, APP_NUMBER, "go")
    assert params["ApiVersion"] == "2010-04-01"
    if action_method == "GET":
        assert params["step"] == "2"
    assert_twilio_signed(verbal, hit)
    # The action's document ran.
    assert second["from"] == APP_NUMBER and second["message_sid"] != reply_sid

    # The reply's status callback: sent, then delivered, each signed, in RCML's format.
    receiver.wait_for(
        lambda requests: any(r.params.get("MessageStatus") == "delivered" for r in requests),
        timeout=10,
    )
    callbacks = receiver.received("/status")
    assert {r.params["MessageSid"] for r in callbacks} == {reply_sid}
    statuses = [r.params["MessageStatus"] for r in callbacks]
    assert [s for s in statuses if s != "queued"] == ["sent", "delivered"], statuses
    assert statuses == sorted(statuses, key=["queued", "sent", "delivered"].index)
    for callback in callbacks:
        assert callback.method == "POST"
        assert header(callback.headers, "Content-Type").startswith(FORM)
        params = callback.params
        assert params["SmsSid"] == reply_sid
        assert params["SmsStatus"] == params["MessageStatus"]
        assert params["AccountSid"] == verbal.account_sid
        assert (params["From"], params["To"]) == (APP_NUMBER, HANDSET)
        assert params["Body"] == "First reply"  # RCML's statusCallback carries the body
        assert params["ApiVersion"] == "2010-04-01"
        assert params["NumMedia"] == "0"
        assert "ErrorCode" not in params and "MediaUrl" not in params
        assert_twilio_signed(verbal, callback)


def test_message_action_hears_about_a_message_that_could_not_be_queued(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    def refused(hit: AppHit) -> tuple[int, str, str]:
        response = MessagingResponse()
        response.message("from a number we do not own", from_="+15559990000", action="action")
        response.message("unreachable: verbs after a <Message action> never run")
        return twiml(response)

    app_server.routes["/sms"] = refused
    app_server.routes["/action"] = lambda hit: reply("Status: " + hit.form["MessageStatus"])
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "try")
    log = ended_log(verbal, session_of(verbal, inbound_sid))
    # "Using an 'action' URL, your application can receive synchronous notification that the
    # message was successfully enqueued or not." (seed 003)
    [hit] = app_server.hits_for("/action")
    assert hit.form["MessageStatus"] == hit.form["SmsStatus"] == "failed"
    # No message was created; the inbound SID must not pass for the reply's.
    assert hit.form.get("MessageSid") != inbound_sid
    assert (hit.form["From"], hit.form["To"], hit.form["Body"]) == (HANDSET, APP_NUMBER, "try")
    assert_twilio_signed(verbal, hit)
    [error] = events(log, "error")
    assert error["code"] == 12100 and "refused" in error["message"]
    # The action's document ran; the verb after the <Message action> did not.
    assert [t["body"] for t in wait_for_texts(verbal, HANDSET, 1)] == ["Status: failed"]
    assert [e["body"] for e in events(log, "message")] == ["Status: failed"]


def test_an_undelivered_reply_reports_the_error_to_its_status_callback(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    with verbal.http() as http:
        rule = {"pattern": HANDSET, "outcome": "undeliverable", "error_code": 30003}
        assert http.post("/sandbox/rules", json=rule).status_code == 201
    app_server.routes["/sms"] = lambda hit: reply("Lost", status_callback=receiver.url("/status"))
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    text_app(verbal, HANDSET, "anyone there?")
    receiver.wait_for(
        lambda requests: any(r.params.get("MessageStatus") == "undelivered" for r in requests),
        timeout=10,
    )
    final = receiver.received("/status")[-1]
    assert final.params["MessageStatus"] == final.params["SmsStatus"] == "undelivered"
    assert final.params["ErrorCode"] == "30003"
    assert final.params["ErrorMessage"]
    assert final.params["Body"] == "Lost"
    assert_twilio_signed(verbal, final)
    assert all("ErrorCode" not in r.params for r in receiver.received("/status")[:-1])
    assert inbox(verbal, HANDSET) == []


# -- RCML's own <Message> form, <Body> and <Media> --------------------------------------------


SEED_003_FIRST_EXAMPLE = """<Response>
    <Message>
        <Body>Hello World!</Body>
        <Media contentType="image/jpeg">http://company.com/pic.jpg</Media>
    </Message>
</Response>"""

SEED_003_SECOND_EXAMPLE = """<Response>
    <Message from="sms:{from_}" to="sms:{to}" statusCallback="{callback}" statusCallbackMethod="POST">
        <Body>Hello World !!!</Body>
    </Message>
</Response>"""  # noqa: E501


def test_seed_rcml_message_with_sms_uris_runs_verbatim(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    document = SEED_003_SECOND_EXAMPLE.format(
        from_=APP_NUMBER, to=OTHER_HANDSET, callback=receiver.url("/status")
    )
    app_server.routes["/sms"] = lambda hit: (200, "application/xml", document)
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    text_app(verbal, HANDSET, "send it on")
    [text] = wait_for_texts(verbal, OTHER_HANDSET, 1)
    assert text["body"] == "Hello World !!!"
    assert (text["from"], text["to"]) == (APP_NUMBER, OTHER_HANDSET)
    assert text["media_urls"] == []

    receiver.wait_for(
        lambda requests: any(r.params.get("MessageStatus") == "delivered" for r in requests),
        timeout=10,
    )
    delivered = [
        r for r in receiver.received("/status") if r.params["MessageStatus"] == "delivered"
    ]
    [callback] = delivered
    assert callback.params["MessageSid"] == text["message_sid"]
    assert callback.params["Body"] == "Hello World !!!"
    assert callback.params["To"] == OTHER_HANDSET
    assert_twilio_signed(verbal, callback)
    assert inbox(verbal, HANDSET) == []  # `to` overrides the default (the texting handset)


def test_seed_rcml_body_and_media_example_runs_verbatim(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/sms"] = lambda hit: (200, "application/xml", SEED_003_FIRST_EXAMPLE)
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    text_app(verbal, HANDSET, "picture please")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    # No `to`/`from`: a reply to the texting handset from the number it texted.
    assert (text["from"], text["to"]) == (APP_NUMBER, HANDSET)
    assert text["body"] == "Hello World!"  # the document's indentation is not the message
    assert text["media_urls"] == ["http://company.com/pic.jpg"]


def test_body_and_media_nouns_reach_the_handset_with_urls_resolved(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    def picture(hit: AppHit) -> tuple[int, str, str]:
        # statusCallbackMethod is not a TwiML attribute; the SDK passes it through as RCML's.
        message = Message(
            status_callback=receiver.url("/status?kind=mms"), status_callback_method="GET"
        )
        message.append(Body("Store Location: 123 Easy St."))
        message.append(Media("https://demo.twilio.com/owl.png"))
        message.append(Media("img/map.jpg"))  # relative to the document's URL
        response = MessagingResponse()
        response.append(message)
        return twiml(response)

    app_server.routes["/shop/sms"] = picture
    verbal.add_app("rcml", app_server.url("/shop/sms"), APP_NUMBER)

    text_app(verbal, HANDSET, "where?")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Store Location: 123 Easy St."
    assert text["from"] == APP_NUMBER
    urls = ["https://demo.twilio.com/owl.png", app_server.url("/shop/img/map.jpg")]
    assert text["media_urls"] == urls
    sent = verbal.twilio().messages(text["message_sid"]).fetch()
    assert sent.num_media == "2"

    # A GET status callback: the parameters in the query, one MediaUrl per medium.
    receiver.wait_for(
        lambda requests: any(r.params.get("MessageStatus") == "delivered" for r in requests),
        timeout=10,
    )
    for callback in receiver.received("/status"):
        assert callback.method == "GET"
        assert callback.params["kind"] == "mms"
        assert callback.params["MessageSid"] == text["message_sid"]
        assert callback.params["NumMedia"] == "2"
        assert callback.params["Body"] == "Store Location: 123 Easy St."
        assert [value for name, value in callback.form if name == "MediaUrl"] == urls
        assert_twilio_signed(verbal, callback)


# -- <Redirect> -------------------------------------------------------------------------------


def test_redirect_to_a_relative_url_fetches_the_next_document_with_the_session_parameters(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    def start(hit: AppHit) -> tuple[int, str, str]:
        response = MessagingResponse()
        response.redirect("step2?from=start", method="GET")
        response.message("never sent: verbs after <Redirect> are unreachable")
        return twiml(response)

    app_server.routes["/flow/start"] = start
    app_server.routes["/flow/step2"] = lambda hit: reply("Redirected: " + hit.form["Body"])
    verbal.add_app("rcml", app_server.url("/flow/start"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "hop")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Redirected: hop"
    assert text["from"] == APP_NUMBER

    [hit] = app_server.hits_for("/flow/step2")
    assert hit.method == "GET"
    params = hit.form
    assert params["from"] == "start"  # the Redirect URL's own query survives
    assert params["MessageSid"] == inbound_sid
    assert (params["From"], params["To"], params["Body"]) == (HANDSET, APP_NUMBER, "hop")
    assert params["AccountSid"] == verbal.account_sid
    assert_twilio_signed(verbal, hit)

    log = ended_log(verbal, session_of(verbal, inbound_sid))
    start_url, step2_url = (e["url"] for e in events(log, "document"))
    assert start_url == app_server.url("/flow/start")
    assert step2_url == hit.url  # a GET document's URL carries the session's parameters
    assert step2_url.startswith(app_server.url("/flow/step2?from=start&"))
    assert [e["body"] for e in events(log, "message")] == ["Redirected: hop"]
    assert inbox(verbal, HANDSET) == [text]


# -- voice documents in a text session --------------------------------------------------------


def test_voice_response_sms_verb_sends_a_text(verbal: LiveVerbal, app_server: AppServer) -> None:
    def voice_style(hit: AppHit) -> tuple[int, str, str]:
        response = VoiceResponse()
        response.sms("Via <Sms>: " + hit.form["Body"])
        response.sms("Copy for the other handset", to=OTHER_HANDSET, from_=APP_NUMBER)
        return twiml(response)

    app_server.routes["/sms"] = voice_style
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    text_app(verbal, HANDSET, "legacy")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert (text["body"], text["from"]) == ("Via <Sms>: legacy", APP_NUMBER)
    [copy] = wait_for_texts(verbal, OTHER_HANDSET, 1)
    assert (copy["body"], copy["from"]) == ("Copy for the other handset", APP_NUMBER)


def test_say_and_dial_in_a_text_session_are_logged_as_errors_and_skipped(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    def voice_only(hit: AppHit) -> tuple[int, str, str]:
        response = VoiceResponse()
        response.say("Hello caller", voice="alice")
        response.dial("+15550009999", timeout=20)
        response.sms("Still here: " + hit.form["Body"])
        return twiml(response)

    app_server.routes["/sms"] = voice_only
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "first")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Still here: first"  # the verbs after them still ran

    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert log["dialect"] == "rcml" and log["channel"] == "text"
    errors = events(log, "error")
    assert [e["code"] for e in errors] == [14110, 14110]
    assert [e["verb_index"] for e in errors] == [0, 1]
    say_error, dial_error = errors
    assert "voice call" in say_error["message"] and "text session" in say_error["message"]
    assert "'dial'" in dial_error["message"].lower()
    assert [e["body"] for e in events(log, "message")] == ["Still here: first"]
    assert log["end_reason"] == "the document ended"

    # The server is still up and running apps.
    second_sid = text_app(verbal, HANDSET, "second")
    texts = wait_for_texts(verbal, HANDSET, 2)
    assert texts[-1]["body"] == "Still here: second"
    assert ended_log(verbal, session_of(verbal, second_sid))["state"] == "ended"


# -- "auto" applications ----------------------------------------------------------------------


def test_auto_app_answering_twiml_is_run_as_rcml(verbal: LiveVerbal, app_server: AppServer) -> None:
    app_server.routes["/sms"] = lambda hit: reply("Detected: " + hit.form["Body"])
    verbal.add_app("auto", app_server.url("/sms"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "which dialect?")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert (text["body"], text["from"]) == ("Detected: which dialect?", APP_NUMBER)

    [hit] = app_server.hits_for("/sms")
    assert set(hit.form) >= TWIML_PARAMS
    assert_twilio_signed(verbal, hit)
    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert log["dialect"] == "rcml"
    assert not events(log, "error")
