"""Twilio's Messaging Services driven by the unmodified `twilio` SDK against a live Verbal: a
service, its sender pool, and sends that name the service instead of a number."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from plivo.exceptions import ValidationError
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.api.twilio_helpers import other_account
from tests.conftest import AppServer, LiveVerbal, WebhookReceiver, wait_until
from tests.engine.helpers import header, inbox
from tests.engine.test_plivo_apps import assert_plivo_signed

FIRST = "+15550001000"
SECOND = "+15550001001"
OUTSIDE = "+15550001002"  # a number of the account, not in the pool
HANDSETS = [f"+1555000{n}000" for n in range(2, 10)]


def sdk(verbal: LiveVerbal):  # type: ignore[no-untyped-def]
    """The SDK with its messaging domain pointed here, as its api domain is."""
    client = verbal.twilio()
    client.messaging.base_url = verbal.base_url
    return client


def number_sids(client, *numbers: str) -> list[str]:  # type: ignore[no-untyped-def]
    by_number = {n.phone_number: n.sid for n in client.incoming_phone_numbers.list()}
    return [by_number[number] for number in numbers]


def code_of(call, *args, **kwargs) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with pytest.raises(TwilioRestException) as raised:
        call(*args, **kwargs)
    return raised.value.status, raised.value.code


def test_services_are_created_fetched_listed_updated_and_deleted(verbal: LiveVerbal) -> None:
    client = sdk(verbal)
    created = client.messaging.v1.services.create(
        friendly_name="Alerts", status_callback="http://127.0.0.1:9/status"
    )
    assert created.sid.startswith("MG") and len(created.sid) == 34
    assert (created.account_sid, created.friendly_name) == (verbal.account_sid, "Alerts")
    assert created.status_callback == "http://127.0.0.1:9/status"
    assert (created.inbound_request_url, created.inbound_method) == (None, "POST")
    assert created.sticky_sender is True
    assert isinstance(created.date_created, datetime) and created.date_created.tzinfo
    assert created.url == f"{verbal.base_url}/v1/Services/{created.sid}"
    assert created.links == {"phone_numbers": f"{created.url}/PhoneNumbers"}

    second = client.messaging.v1.services.create(friendly_name="Marketing")
    assert [s.sid for s in client.messaging.v1.services.list()] == [created.sid, second.sid]
    # Paged one by one, the SDK follows the pages' absolute links.
    assert [s.sid for s in client.messaging.v1.services.list(page_size=1)] == [
        created.sid,
        second.sid,
    ]
    fetched = client.messaging.v1.services(created.sid).fetch()
    assert (fetched.sid, fetched.friendly_name) == (created.sid, "Alerts")

    updated = client.messaging.v1.services(created.sid).update(
        friendly_name="Alerts 2", status_callback="", sticky_sender=False
    )
    assert (updated.friendly_name, updated.status_callback, updated.sticky_sender) == (
        "Alerts 2",
        None,
        False,
    )
    assert code_of(client.messaging.v1.services(created.sid).update, status_callback="ftp://x") == (
        400,
        21502,
    )
    assert code_of(client.messaging.v1.services.create, friendly_name="") == (400, 20001)

    # Another account sees none of them.
    stranger = other_account(verbal)
    stranger.messaging.base_url = verbal.base_url
    assert stranger.messaging.v1.services.list() == []
    assert code_of(stranger.messaging.v1.services(created.sid).fetch) == (404, 20404)

    assert client.messaging.v1.services(created.sid).delete() is True
    assert code_of(client.messaging.v1.services(created.sid).fetch) == (404, 20404)
    assert [s.sid for s in client.messaging.v1.services.list()] == [second.sid]


def test_a_service_sends_from_its_pool_each_handset_from_one_number_with_its_callback(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    for number in (SECOND, OUTSIDE):
        verbal.add_number(number)
    client = sdk(verbal)
    service = client.messaging.v1.services.create(
        friendly_name="Pool", status_callback=receiver.url()
    )
    pool = client.messaging.v1.services(service.sid).phone_numbers
    # An empty pool has nobody to send from.
    assert code_of(
        client.messages.create, to=HANDSETS[0], messaging_service_sid=service.sid, body="x"
    ) == (400, 21704)

    first_sid, second_sid = number_sids(client, FIRST, SECOND)
    added = pool.create(phone_number_sid=first_sid)
    assert (added.sid, added.service_sid, added.phone_number) == (first_sid, service.sid, FIRST)
    assert (added.account_sid, added.country_code, added.capabilities) == (
        verbal.account_sid,
        "US",
        ["SMS", "MMS"],
    )
    pool.create(phone_number_sid=second_sid)
    assert [n.phone_number for n in pool.list()] == [FIRST, SECOND]
    assert pool(second_sid).fetch().phone_number == SECOND
    # A number is in one service at most; a number of another account is none of ours.
    other = client.messaging.v1.services.create(friendly_name="Other")
    assert code_of(
        client.messaging.v1.services(other.sid).phone_numbers.create, phone_number_sid=first_sid
    ) == (400, 21712)
    assert code_of(pool.create, phone_number_sid="PN" + "0" * 32) == (400, 21421)

    sent = {
        handset: [
            client.messages.create(to=handset, messaging_service_sid=service.sid, body=text)
            for text in ("one", "two")
        ]
        for handset in HANDSETS
    }
    senders = {handset: {m.from_ for m in messages} for handset, messages in sent.items()}
    # Each handset hears from one number of the pool, and the pool is shared among them.
    assert all(len(numbers) == 1 for numbers in senders.values()), senders
    assert set().union(*senders.values()) == {FIRST, SECOND}
    for message in (m for messages in sent.values() for m in messages):
        assert message.messaging_service_sid == service.sid
        assert message.status == "queued"
        assert client.messages(message.sid).fetch().messaging_service_sid == service.sid

    # The service's status callback, signed with the account's token as any other.
    count = 3 * 2 * len(HANDSETS)
    receiver.wait_for(lambda rs: len(rs) >= count)
    validator = RequestValidator(verbal.auth_token)
    sids = {m.sid for messages in sent.values() for m in messages}
    for request in receiver.received():
        assert request.params["MessageSid"] in sids
        assert validator.validate(
            request.url, request.params, request.headers["X-Twilio-Signature"]
        ), request
    delivered = [r for r in receiver.received() if r.params["MessageStatus"] == "delivered"]
    assert len(delivered) == 2 * len(HANDSETS)

    # From wins over the pool, and the message still names the service.
    explicit = client.messages.create(
        to=HANDSETS[0], from_=OUTSIDE, messaging_service_sid=service.sid, body="explicit"
    )
    assert (explicit.from_, explicit.messaging_service_sid) == (OUTSIDE, service.sid)

    # Out of the pool, a number sends no more for the service: the rest of the pool does.
    moved = [h for h, numbers in senders.items() if numbers == {FIRST}]
    pool(first_sid).delete()
    assert [n.phone_number for n in pool.list()] == [SECOND]
    again = client.messages.create(to=moved[0], messaging_service_sid=service.sid, body="3")
    assert again.from_ == SECOND
    assert code_of(pool(first_sid).delete) == (404, 20404)

    # A number the account gives up leaves the pool with it, at once (the pool, cached by
    # this send, is read again).
    assert client.messages.create(to=moved[0], messaging_service_sid=service.sid, body="4").from_
    client.incoming_phone_numbers(second_sid).delete()
    assert pool.list() == []
    assert code_of(
        client.messages.create, to=moved[0], messaging_service_sid=service.sid, body="5"
    ) == (400, 21704)

    assert code_of(
        client.messages.create, to=HANDSETS[0], messaging_service_sid="MG" + "0" * 32, body="x"
    ) == (400, 21701)


def test_the_plivo_sdk_sends_through_a_service_named_by_its_powerpack_uuid(
    verbal: LiveVerbal, client: Any
) -> None:
    verbal.add_number(SECOND)
    twilio = sdk(verbal)
    service = twilio.messaging.v1.services.create(friendly_name="Powerpack")
    for sid in number_sids(twilio, FIRST, SECOND):
        twilio.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=sid)
    powerpack = str(uuid.UUID(hex=service.sid[2:]))

    senders = {}
    for handset in HANDSETS[:4]:
        uuids = [
            client.messages.create(powerpack_uuid=powerpack, dst=handset, text=text).message_uuid[0]
            for text in ("one", "two")
        ]
        froms = {client.messages.get(u).from_number for u in uuids}
        assert len(froms) == 1, froms  # the same number both times
        senders[handset] = froms.pop()
        # The message is the same one the Twilio API shows, naming the service.
        message = twilio.messages("SM" + uuid.UUID(uuids[0]).hex).fetch()
        assert message.messaging_service_sid == service.sid
        assert "+" + senders[handset] == message.from_
    assert set(senders.values()) <= {FIRST[1:], SECOND[1:]}

    with pytest.raises(ValidationError) as unknown:
        client.messages.create(powerpack_uuid=str(uuid.uuid4()), dst=HANDSETS[0], text="x")
    assert "invalid powerpack_uuid" in str(unknown.value)


def test_a_services_inbound_url_answers_texts_to_its_numbers_without_an_app(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/inbound"] = lambda hit: (
        200,
        "text/xml",
        f"<Response><Message>Got: {hit.form['Body']}</Message></Response>",
    )
    client = sdk(verbal)
    service = client.messaging.v1.services.create(
        friendly_name="Inbound", inbound_request_url=app_server.url("/inbound")
    )
    assert service.inbound_request_url == app_server.url("/inbound")
    [first_sid] = number_sids(client, FIRST)
    client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=first_sid)
    # The service's application is its own: no list shows it.
    assert client.applications.list() == []

    with verbal.http() as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSETS[0]}/messages", json={"to": FIRST, "body": "hello"}
        )
    assert sent.status_code == 201, sent.text
    [hit] = wait_until(lambda: app_server.hits_for("/inbound"), what="the service's URL")
    assert (hit.form["From"], hit.form["To"], hit.form["Body"]) == (HANDSETS[0], FIRST, "hello")
    signature = header(hit.headers, "X-Twilio-Signature")
    assert RequestValidator(verbal.auth_token).validate(hit.url, hit.form, signature)
    wait_until(
        lambda: any(m["body"] == "Got: hello" for m in inbox(verbal, HANDSETS[0])),
        what="the reply",
    )

    # Without the URL, texts to the number are only recorded.
    client.messaging.v1.services(service.sid).update(inbound_request_url="")
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{HANDSETS[0]}/messages", json={"to": FIRST, "body": "again"})
    received = wait_until(
        lambda: [m for m in client.messages.list(from_=HANDSETS[0]) if m.body == "again"],
        what="the second text recorded",
    )
    assert received[0].status == "received"
    assert len(app_server.hits_for("/inbound")) == 1


def text_number(verbal: LiveVerbal, handset: str, number: str, body: str) -> str:
    with verbal.http() as http:
        sent = http.post(f"/sandbox/handsets/{handset}/messages", json={"to": number, "body": body})
    assert sent.status_code == 201, sent.text
    return str(sent.json()["message_sid"])


def test_callbacks_and_inbound_requests_name_the_service_and_its_inbound_url_comes_first(
    verbal: LiveVerbal, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    for path in ("/own", "/service"):
        app_server.routes[path] = lambda hit: (200, "text/xml", "<Response/>")
    # The number has an app of its own; in the service, the service's URL answers it.
    verbal.add_app("rcml", app_server.url("/own"), FIRST)
    client = sdk(verbal)
    service = client.messaging.v1.services.create(
        friendly_name="Callbacks",
        status_callback=receiver.url("/service-status"),
        inbound_request_url=app_server.url("/service"),
    )
    assert service.use_inbound_webhook_on_number is False
    [first_sid] = number_sids(client, FIRST)
    client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=first_sid)
    validator = RequestValidator(verbal.auth_token)

    through = client.messages.create(
        to=HANDSETS[0], messaging_service_sid=service.sid, body="through"
    )
    plain = client.messages.create(
        to=HANDSETS[1], from_=FIRST, body="plain", status_callback=receiver.url("/plain")
    )
    receiver.wait_for(lambda rs: len(rs) >= 6)
    for path, sid, service_sid in (
        ("/service-status", through.sid, service.sid),
        ("/plain", plain.sid, None),
    ):
        callbacks = receiver.received(path)
        assert [r.params["MessageStatus"] for r in callbacks] == ["queued", "sent", "delivered"]
        for request in callbacks:
            assert validator.validate(
                request.url, request.params, request.headers["X-Twilio-Signature"]
            ), request
            expected = {
                "AccountSid": verbal.account_sid,
                "ApiVersion": "2010-04-01",
                "From": FIRST,
                "To": HANDSETS[0] if service_sid else HANDSETS[1],
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": request.params["MessageStatus"],
                "SmsStatus": request.params["MessageStatus"],
                "NumSegments": "1",
                "NumMedia": "0",
            }
            if service_sid:
                expected["MessagingServiceSid"] = service_sid
            assert request.params == expected

    # Inbound: the service's URL, told the service, signed; the message names it too.
    inbound_sid = text_number(verbal, HANDSETS[0], FIRST, "hello")
    [hit] = wait_until(lambda: app_server.hits_for("/service"), what="the service's URL")
    assert hit.form["MessagingServiceSid"] == service.sid
    assert (hit.form["MessageSid"], hit.form["Body"], hit.form["To"]) == (
        inbound_sid,
        "hello",
        FIRST,
    )
    assert validator.validate(hit.url, hit.form, header(hit.headers, "X-Twilio-Signature"))
    assert client.messages(inbound_sid).fetch().messaging_service_sid == service.sid
    assert app_server.hits_for("/own") == []

    # UseInboundWebhookOnNumber: the number's own app, still told the service.
    updated = client.messaging.v1.services(service.sid).update(use_inbound_webhook_on_number=True)
    assert updated.use_inbound_webhook_on_number is True
    assert client.messaging.v1.services(service.sid).fetch().use_inbound_webhook_on_number
    text_number(verbal, HANDSETS[0], FIRST, "again")
    [own] = wait_until(lambda: app_server.hits_for("/own"), what="the number's own app")
    assert (own.form["Body"], own.form["MessagingServiceSid"]) == ("again", service.sid)
    assert validator.validate(own.url, own.form, header(own.headers, "X-Twilio-Signature"))

    # A text to a number in no service names none.
    verbal.add_app("rcml", app_server.url("/own"), SECOND)
    text_number(verbal, HANDSETS[0], SECOND, "solo")
    hits = wait_until(
        lambda: [h for h in app_server.hits_for("/own") if h.form["Body"] == "solo"],
        what="the number outside the service",
    )
    assert "MessagingServiceSid" not in hits[0].form
    assert len(app_server.hits_for("/service")) == 1


def test_plivo_reports_and_inbound_requests_carry_the_powerpack_uuid(
    verbal: LiveVerbal, client: Any, app_server: AppServer, receiver: WebhookReceiver
) -> None:
    app_server.routes["/plivo"] = lambda hit: (200, "application/xml", "<Response/>")
    verbal.add_app("plivo", app_server.url("/plivo"), FIRST)
    twilio = sdk(verbal)
    service = twilio.messaging.v1.services.create(
        friendly_name="Powerpack", use_inbound_webhook_on_number=True
    )
    [first_sid] = number_sids(twilio, FIRST)
    twilio.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=first_sid)
    powerpack = str(uuid.UUID(hex=service.sid[2:]))

    sent = client.messages.create(
        powerpack_uuid=powerpack, dst=HANDSETS[0], text="pp", url=receiver.url("/dlr")
    )
    [message_uuid] = sent.message_uuid
    assert client.messages.get(message_uuid).powerpack_id == powerpack
    reports = receiver.wait_for(lambda rs: len(rs) >= 3)
    assert [r.params["Status"] for r in reports] == ["queued", "sent", "delivered"]
    for report in reports:
        assert (report.params["MessageUUID"], report.params["PowerpackUUID"]) == (
            message_uuid,
            powerpack,
        )
        assert_plivo_signed(verbal, report)
    # A message sent from a number names no Powerpack.
    plain = client.messages.create(src=FIRST, dst=HANDSETS[1], text="plain")
    assert client.messages.get(plain.message_uuid[0]).powerpack_id is None
    # Plivo's list filter finds the Powerpack's messages only.
    listed = client.messages.list(powerpack_id=powerpack)
    assert [m.message_uuid for m in listed] == [message_uuid]

    # A STOP to the pool number reaches the number's Plivo app with the Powerpack and the
    # intent, and opts the handset out of the Powerpack.
    text_number(verbal, HANDSETS[0], FIRST, "STOP")
    [hit] = wait_until(lambda: app_server.hits_for("/plivo"), what="the number's Plivo app")
    assert (hit.form["PowerpackUUID"], hit.form["MessageIntent"]) == (powerpack, "optout")
    assert_plivo_signed(verbal, hit)
    with pytest.raises(ValidationError) as refused:
        client.messages.create(powerpack_uuid=powerpack, dst=HANDSETS[0], text="again")
    assert "Source number blocked by STOP from the destination" in str(refused.value)
