"""Opt-outs seen from an app, in each dialect: the STOP still reaches the app, the app's reply
to it is refused with the reason in the session log, and after START its replies go out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from plivo import plivoxml
from sqlalchemy import select
from twilio.twiml.messaging_response import MessagingResponse

from tests.conftest import AppHit, AppServer, LiveVerbal, wait_until
from tests.engine.helpers import APP_NUMBER, text_app, wait_for_texts
from verbal.messaging.optouts import DEFAULT_REPLIES, Keyword
from verbal.store.models import Session as SessionRow

HANDSET = "+15550002000"
REPLY = "Thanks for your text"


def rcml(hit: AppHit) -> tuple[int, str, str]:
    response = MessagingResponse()
    response.message(REPLY)
    return 200, "text/xml", response.to_xml()


def plivo(hit: AppHit) -> tuple[int, str, str]:
    response = plivoxml.ResponseElement()
    response.add(plivoxml.MessageElement(REPLY, src=APP_NUMBER, dst=HANDSET))
    return 200, "application/xml", response.to_string()


def tropo(hit: AppHit) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps({"tropo": [{"say": {"value": REPLY}}]})


# Each dialect's app, and where its request carries the text that started the session.
APPS: dict[str, tuple[Callable[[AppHit], tuple[int, str, str]], Callable[[AppHit], str]]] = {
    "rcml": (rcml, lambda hit: hit.form["Body"]),
    "plivo": (plivo, lambda hit: hit.form["Text"]),
    "tropo": (tropo, lambda hit: hit.json["session"]["initialText"]),
}


def ended_log(verbal: LiveVerbal, inbound_sid: str) -> dict[str, Any]:
    async def find(runtime: Any) -> str | None:
        async with runtime.sessions() as session:
            return await session.scalar(
                select(SessionRow.sid).where(SessionRow.inbound_message_sid == inbound_sid)
            )

    sid = wait_until(lambda: verbal.call(find), timeout=10, what="the session to start")
    return wait_until(
        lambda: (log := verbal.session_log(sid))["state"] == "ended" and log,
        timeout=10,
        what="the session to end",
    )


def events(log: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in log["events"] if event["kind"] == kind]


@pytest.mark.parametrize("dialect", sorted(APPS))
def test_the_app_gets_the_stop_and_its_reply_is_refused_until_start(
    verbal: LiveVerbal, app_server: AppServer, dialect: str
) -> None:
    document, text_of = APPS[dialect]
    app_server.routes["/sms"] = document
    verbal.add_app(dialect, app_server.url("/sms"), APP_NUMBER)

    # Positive control: the app's reply reaches the handset.
    log = ended_log(verbal, text_app(verbal, HANDSET, "hello"))
    assert [t["body"] for t in wait_for_texts(verbal, HANDSET, 1)] == [REPLY]
    assert not events(log, "error")

    log = ended_log(verbal, text_app(verbal, HANDSET, "STOP"))
    assert [text_of(hit) for hit in app_server.hits_for("/sms")] == ["hello", "STOP"]
    [error] = events(log, "error")
    assert "unsubscribed recipient" in error["message"], error
    assert HANDSET in error["message"] and APP_NUMBER in error["message"]
    assert not events(log, "message")
    # The session has ended, its reply refused: the confirmation is the one new text.
    texts = wait_for_texts(verbal, HANDSET, 2)
    assert [t["body"] for t in texts] == [REPLY, DEFAULT_REPLIES[Keyword.OPT_OUT]]

    log = ended_log(verbal, text_app(verbal, HANDSET, "START"))
    assert not events(log, "error")
    texts = wait_for_texts(verbal, HANDSET, 4)
    # The confirmation and the app's reply, in whichever order they were delivered.
    assert sorted(t["body"] for t in texts[2:]) == sorted([DEFAULT_REPLIES[Keyword.OPT_IN], REPLY])
    if dialect == "rcml":
        # Twilio's OptOutType tells the app which keyword came, as Advanced Opt-Out does.
        hits = app_server.hits_for("/sms")
        assert [hit.form.get("OptOutType") for hit in hits] == [None, "STOP", "START"]


def text_number(verbal: LiveVerbal, number: str, body: str) -> None:
    with verbal.http() as http:
        sent = http.post(f"/sandbox/handsets/{HANDSET}/messages", json={"to": number, "body": body})
    assert sent.status_code == 201, sent.text


@pytest.mark.parametrize("dialect", sorted(APPS))
def test_a_stop_to_another_number_of_the_service_refuses_the_apps_reply(
    verbal: LiveVerbal, app_server: AppServer, dialect: str
) -> None:
    other = "+15550001001"
    document, _ = APPS[dialect]
    app_server.routes["/sms"] = document
    verbal.add_app(dialect, app_server.url("/sms"), APP_NUMBER)
    verbal.add_number(other)
    client = verbal.twilio()
    client.messaging.base_url = verbal.base_url
    # The numbers' own apps answer their texts (UseInboundWebhookOnNumber).
    service = client.messaging.v1.services.create(
        friendly_name="Apps", use_inbound_webhook_on_number=True
    )
    for number in client.incoming_phone_numbers.list():
        client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number.sid)

    text_number(verbal, other, "STOP")
    assert wait_for_texts(verbal, HANDSET, 1)[0]["from"] == other
    log = ended_log(verbal, text_app(verbal, HANDSET, "hello"))
    [error] = events(log, "error")
    assert f"opted out of messages from the Messaging Service {service.sid}" in error["message"]
    assert not events(log, "message")

    text_number(verbal, other, "START")
    log = ended_log(verbal, text_app(verbal, HANDSET, "hello again"))
    assert not events(log, "error")
    texts = wait_for_texts(verbal, HANDSET, 3)
    assert sorted(t["body"] for t in texts[1:]) == sorted([DEFAULT_REPLIES[Keyword.OPT_IN], REPLY])
