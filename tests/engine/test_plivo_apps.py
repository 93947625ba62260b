"""Plivo XML messaging apps on Verbal, end to end.

Real app servers on loopback answer with documents made by Plivo's own generator
(`plivo.plivoxml`); sandbox handsets text the app's number and read their inboxes; apps and
delivery-report receivers check what they receive with Plivo's own `validate_signature` and
`validate_v3_signature`.
"""

from __future__ import annotations

import uuid
from typing import Any

from plivo import plivoxml
from plivo.utils import validate_signature, validate_v3_signature
from sqlalchemy import select

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
NO_CHARGE = "0.00000"


# -- helpers ----------------------------------------------------------------------------------


def plivo_xml(*elements: Any, pretty: bool = True) -> tuple[int, str, str]:
    """What a Plivo app returns: the SDK's XML (pretty-printed by default) as application/xml."""
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return 200, "application/xml", response.to_string(pretty)


def assert_plivo_signed(verbal: LiveVerbal, request: AppHit | ReceivedRequest) -> None:
    """Check the request as a Plivo app does: the SDK's validators over what arrived."""
    token = verbal.auth_token
    headers = request.headers
    v2 = header(headers, "X-Plivo-Signature-V2")
    v2_nonce = header(headers, "X-Plivo-Signature-V2-Nonce")
    v3 = header(headers, "X-Plivo-Signature-V3")
    v3_nonce = header(headers, "X-Plivo-Signature-V3-Nonce")
    assert v2_nonce.isdigit() and len(v2_nonce) == 20
    assert v3_nonce.isdigit() and len(v3_nonce) == 20
    # A GET's parameters are in its URL; validate_v3_signature reads them from there.
    params = {} if request.method == "GET" else dict(request.form)
    assert validate_signature(request.url, v2_nonce, v2, token)
    assert validate_v3_signature(request.method, request.url, v3_nonce, token, v3, params)
    assert header(headers, "X-Plivo-Signature-Ma-V2") == v2
    assert header(headers, "X-Plivo-Signature-Ma-V3") == v3
    assert not validate_signature(request.url, v2_nonce, v2, token + "x")
    assert not validate_v3_signature(request.method, request.url, v3_nonce, token + "x", v3, params)


def uuid_of(sid: str) -> str:
    """The MessageUUID Plivo apps see for a Verbal message SID (its 128 bits, as a UUID)."""
    return str(uuid.UUID(hex=sid[2:]))


def session_of(verbal: LiveVerbal, inbound_sid: str) -> str:
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


# -- inbound text -> app -> <Message> -> delivery reports -------------------------------------


def test_inbound_text_reaches_the_app_signed_and_its_message_is_delivered_and_reported(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    def reply_to_sms(hit: AppHit) -> tuple[int, str, str]:
        # Plivo's own example: swap the numbers and answer with <Message>.
        form = hit.form
        return plivo_xml(
            plivoxml.MessageElement(
                "Thanks for: " + form["Text"],
                src=form["To"],
                dst=form["From"],
                type="sms",
                callback_url=receiver.url("/dlr"),
                callback_method="POST",
            )
        )

    app_server.routes["/message"] = reply_to_sms
    # The URL's own query is part of what V3 signs (V2 leaves it out).
    verbal.add_app("plivo", app_server.url("/message?app=sms"), APP_NUMBER)

    body = 'hi & <bye> "q" ünï ✓'
    inbound_sid = text_app(verbal, HANDSET, body)
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Thanks for: " + body
    assert (text["from"], text["to"]) == (APP_NUMBER, HANDSET)
    assert text["media_urls"] == []

    [hit] = app_server.hits_for("/message")
    assert hit.method == "POST"
    assert hit.url == app_server.url("/message?app=sms")
    assert header(hit.headers, "Content-Type").startswith(FORM)
    params = hit.form
    assert params["From"] == HANDSET
    assert params["To"] == APP_NUMBER
    assert params["Text"] == body
    assert params["Type"] == "sms"
    assert params["MessageUUID"] == uuid_of(inbound_sid)
    assert params["Units"] == "1"
    assert params["TotalRate"] == params["TotalAmount"] == NO_CHARGE
    assert params["MessageIntent"] == ""
    assert params["PowerpackUUID"] == ""
    assert "Body" not in params and "MediaCount" not in params  # MMS only
    assert_plivo_signed(verbal, hit)

    # Delivery reports: queued, sent, delivered, in Plivo's format, each signed.
    receiver.wait_for(
        lambda requests: any(r.params.get("Status") == "delivered" for r in requests),
        timeout=10,
    )
    reports = receiver.received("/dlr")
    assert [r.params["Status"] for r in reports] == ["queued", "sent", "delivered"]
    assert [r.params["Sequence"] for r in reports] == ["1", "2", "3"]
    reply_uuid = uuid_of(text["message_sid"])
    for report in reports:
        assert report.method == "POST"
        assert header(report.headers, "Content-Type").startswith(FORM)
        params = report.params
        assert params["MessageUUID"] == params["ParentMessageUUID"] == reply_uuid
        assert (params["From"], params["To"]) == (APP_NUMBER, HANDSET)
        assert params["Type"] == "sms"
        assert params["Units"] == "1"
        assert params["TotalRate"] == params["TotalAmount"] == NO_CHARGE
        assert params["PowerpackUUID"] == ""
        assert "ErrorCode" not in params
        assert not {"MessageSid", "MessageStatus", "AccountSid"} & set(params)  # not Twilio's
        assert_plivo_signed(verbal, report)


def test_a_get_delivery_report_carries_its_parameters_in_the_signed_url(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.MessageElement(
            "Reported by GET",
            src=APP_NUMBER,
            dst=HANDSET,
            callback_url=receiver.url("/dlr?app=7"),
            callback_method="GET",
        ),
        pretty=False,
    )
    verbal.add_app("plivo", app_server.url("/message"), APP_NUMBER)

    text_app(verbal, HANDSET, "report by GET")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Reported by GET"
    receiver.wait_for(
        lambda requests: any(r.params.get("Status") == "delivered" for r in requests),
        timeout=10,
    )
    reports = receiver.received("/dlr")
    assert [r.params["Status"] for r in reports] == ["queued", "sent", "delivered"]
    for report in reports:
        assert report.method == "GET"
        assert report.params["app"] == "7"
        assert report.params["MessageUUID"] == uuid_of(text["message_sid"])
        assert_plivo_signed(verbal, report)


def test_an_undelivered_message_is_reported_with_plivos_error_code(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    with verbal.http() as http:
        rule = {"pattern": OTHER_HANDSET, "outcome": "undeliverable", "error_code": 30003}
        assert http.post("/sandbox/rules", json=rule).status_code == 201
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.MessageElement(
            "Lost", src=APP_NUMBER, dst=OTHER_HANDSET, callback_url=receiver.url("/dlr")
        )
    )
    verbal.add_app("plivo", app_server.url("/message"), APP_NUMBER)

    text_app(verbal, HANDSET, "forward this")
    receiver.wait_for(
        lambda requests: any(r.params.get("Status") == "undelivered" for r in requests),
        timeout=10,
    )
    reports = receiver.received("/dlr")
    assert [r.params["Status"] for r in reports] == ["queued", "sent", "undelivered"]
    # 30003 (unreachable handset) is Plivo's 80, "destination temporarily unavailable".
    assert [r.params.get("ErrorCode") for r in reports] == [None, None, "80"]
    for report in reports:
        assert_plivo_signed(verbal, report)
    assert inbox(verbal, OTHER_HANDSET) == []


def test_a_get_app_gets_the_parameters_in_the_query_signed_for_the_sdk(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.MessageElement(f"Got {hit.form['Units']} units", src=APP_NUMBER, dst=HANDSET)
    )
    verbal.add_app("plivo", app_server.url("/message?app=sms"), APP_NUMBER, sms_method="GET")

    long_text = "STOP " * 40  # 200 GSM-7 characters: two parts
    inbound_sid = text_app(verbal, HANDSET, long_text)
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "Got 2 units"

    [hit] = app_server.hits_for("/message")
    assert hit.method == "GET" and hit.body == b""
    params = hit.form  # parsed from the query string
    assert params["app"] == "sms"
    assert (params["From"], params["To"], params["Type"]) == (HANDSET, APP_NUMBER, "sms")
    assert params["Text"] == long_text
    assert params["MessageUUID"] == uuid_of(inbound_sid)
    assert params["Units"] == "2"
    assert params["TotalRate"] == params["TotalAmount"] == NO_CHARGE
    assert params["MessageIntent"] == ""  # only a whole-message keyword is an intent
    assert_plivo_signed(verbal, hit)


def test_an_inbound_mms_is_described_in_plivos_mms_parameters(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.MessageElement(f"{hit.form['MediaCount']} media", src=APP_NUMBER, dst=HANDSET)
    )
    verbal.add_app("plivo", app_server.url("/message"), APP_NUMBER)

    media = ("https://example.com/cat.jpg", "https://example.com/dog.png")
    inbound_sid = text_app(verbal, HANDSET, "pets", media=media)
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert text["body"] == "2 media"

    [hit] = app_server.hits_for("/message")
    params = hit.form
    assert params["Type"] == "mms"
    assert params["Text"] == params["Body"] == "pets"
    assert params["MessageUUID"] == uuid_of(inbound_sid)
    assert params["MediaCount"] == "2"
    assert (params["Media1"], params["Media2"]) == media
    assert "MessageIntent" not in params  # SMS only
    assert_plivo_signed(verbal, hit)


def test_bulk_destinations_each_get_the_message(verbal: LiveVerbal, app_server: AppServer) -> None:
    app_server.routes["/message"] = lambda hit: plivo_xml(
        # A destination listed twice gets the message once, as Plivo's API drops duplicates.
        plivoxml.MessageElement(
            "To everyone", src=APP_NUMBER, dst=f"{HANDSET}<{OTHER_HANDSET}<{HANDSET}", type="sms"
        )
    )
    verbal.add_app("plivo", app_server.url("/message"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "broadcast")
    [mine] = wait_for_texts(verbal, HANDSET, 1)
    [theirs] = wait_for_texts(verbal, OTHER_HANDSET, 1)
    assert (mine["body"], mine["from"], mine["to"]) == ("To everyone", APP_NUMBER, HANDSET)
    assert (theirs["body"], theirs["from"], theirs["to"]) == (
        "To everyone",
        APP_NUMBER,
        OTHER_HANDSET,
    )
    assert mine["message_sid"] != theirs["message_sid"]  # one message per destination

    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert sorted(e["to"] for e in events(log, "message")) == [HANDSET, OTHER_HANDSET]
    assert not events(log, "error")


def test_speak_in_a_text_session_is_logged_as_an_error_and_the_message_still_sent(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.SpeakElement("Hello caller", voice="WOMAN", language="en-US", loop=1),
        plivoxml.MessageElement("Texted instead: " + hit.form["Text"], src=APP_NUMBER, dst=HANDSET),
    )
    verbal.add_app("plivo", app_server.url("/message"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "call me")
    [text] = wait_for_texts(verbal, HANDSET, 1)
    assert (text["body"], text["from"]) == ("Texted instead: call me", APP_NUMBER)

    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert log["dialect"] == "plivo"
    [error] = events(log, "error")
    assert error["code"] == 99050  # the dialect's voice-verb-on-text number
    assert error["verb_index"] == 0
    assert "voice call" in error["message"] and "text session" in error["message"]
    assert [e["body"] for e in events(log, "message")] == ["Texted instead: call me"]
    assert log["end_reason"] == "the document ended"

    # The server is still up and running apps.
    text_app(verbal, HANDSET, "again")
    assert wait_for_texts(verbal, HANDSET, 2)[-1]["body"] == "Texted instead: again"


# -- "auto" applications ----------------------------------------------------------------------


def test_auto_app_answering_plivo_xml_is_run_as_plivo(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    # An "auto" app's first request cannot know the dialect yet; its answer decides.
    app_server.routes["/message"] = lambda hit: plivo_xml(
        plivoxml.MessageElement(
            "Detected", src=APP_NUMBER, dst=HANDSET, callback_url=receiver.url("/dlr")
        ),
        plivoxml.RedirectElement(app_server.url("/next")),
    )
    app_server.routes["/next"] = lambda hit: plivo_xml(
        plivoxml.MessageElement("Next: " + hit.form["Text"], src=APP_NUMBER, dst=HANDSET)
    )
    verbal.add_app("auto", app_server.url("/message"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "which dialect?")
    texts = {t["body"]: t for t in wait_for_texts(verbal, HANDSET, 2)}
    first, second = texts["Detected"], texts["Next: which dialect?"]
    assert first["from"] == second["from"] == APP_NUMBER

    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert log["dialect"] == "plivo"
    assert not events(log, "error")
    # Once detected, the session speaks Plivo: the redirect gets Plivo's parameters, signed,
    # and the message's delivery reports are Plivo's.
    [hit] = app_server.hits_for("/next")
    assert hit.method == "POST"
    assert hit.form["MessageUUID"] == uuid_of(inbound_sid)
    assert (hit.form["From"], hit.form["To"], hit.form["Type"]) == (HANDSET, APP_NUMBER, "sms")
    assert_plivo_signed(verbal, hit)
    receiver.wait_for(
        lambda requests: any(r.params.get("Status") == "delivered" for r in requests),
        timeout=10,
    )
    reports = receiver.received("/dlr")
    assert [r.params["Status"] for r in reports] == ["queued", "sent", "delivered"]
    assert {r.params["MessageUUID"] for r in reports} == {uuid_of(first["message_sid"])}
    for report in reports:
        assert_plivo_signed(verbal, report)


def test_an_unchanged_plivo_app_works_behind_an_auto_number(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    def plivo_app(hit: AppHit) -> tuple[int, str, str]:
        # What a careful Plivo app does first: check the signature, then read Text.
        headers = {key.lower(): value for key, value in hit.headers.items()}
        nonce = headers.get("x-plivo-signature-v3-nonce", "")
        signature = headers.get("x-plivo-signature-v3", "")
        if not validate_v3_signature(
            hit.method, hit.url, nonce, verbal.auth_token, signature, hit.form
        ):
            return 403, "text/plain", "bad signature"
        if "Text" not in hit.form:
            return 400, "text/plain", "no Text"
        return plivo_xml(
            plivoxml.MessageElement("Echo: " + hit.form["Text"], src=APP_NUMBER, dst=HANDSET)
        )

    app_server.routes["/message"] = plivo_app
    verbal.add_app("auto", app_server.url("/message"), APP_NUMBER)

    inbound_sid = text_app(verbal, HANDSET, "plain plivo app")
    log = ended_log(verbal, session_of(verbal, inbound_sid))
    assert not events(log, "error"), events(log, "error")
    assert log["dialect"] == "plivo"
    assert [t["body"] for t in wait_for_texts(verbal, HANDSET, 1)] == ["Echo: plain plivo app"]

    # Before any answer the app could be either kind: the first request carries Plivo's
    # parameters and signatures (Twilio's ride along for a TwiML app).
    [hit] = app_server.hits_for("/message")
    params = hit.form
    assert (params["From"], params["To"]) == (HANDSET, APP_NUMBER)
    assert (params["Text"], params["Type"]) == ("plain plivo app", "sms")
    assert params["MessageUUID"] == uuid_of(inbound_sid)
    assert params["Units"] == "1"
    assert_plivo_signed(verbal, hit)
