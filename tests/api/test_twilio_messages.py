"""Twilio's Messages API driven by the unmodified `twilio` SDK against a live Verbal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.api.twilio_helpers import other_account, twilio_error
from tests.conftest import LiveVerbal, WebhookReceiver, wait_until

FROM = "+15550001000"
HANDSET = "+15550002000"


def statuses(receiver: WebhookReceiver, sid: str) -> list[str]:
    return [r.params["MessageStatus"] for r in receiver.received() if r.params["MessageSid"] == sid]


def test_sdk_send_reports_queued_sent_delivered_with_valid_signatures(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    client = verbal.twilio()
    message = client.messages.create(
        to=HANDSET, from_=FROM, body="Hello from the SDK", status_callback=receiver.url()
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (HANDSET, FROM, "Hello from the SDK")
    assert message.num_segments == "1"
    assert message.account_sid == verbal.account_sid
    assert message.date_created is not None

    receiver.wait_for(lambda rs: len(rs) >= 3)
    assert statuses(receiver, message.sid) == ["queued", "sent", "delivered"]

    validator = RequestValidator(verbal.auth_token)
    for request in receiver.received():
        assert request.method == "POST"
        assert validator.validate(
            request.url, request.params, request.headers["X-Twilio-Signature"]
        ), request
        assert request.params["AccountSid"] == verbal.account_sid
        assert request.params["SmsSid"] == message.sid
        assert request.params["SmsStatus"] == request.params["MessageStatus"]
        assert (request.params["From"], request.params["To"]) == (FROM, HANDSET)
        assert "ErrorCode" not in request.params
    # A wrong token must not validate: the signature really depends on the secret.
    assert not RequestValidator("0" * 32).validate(
        receiver.received()[0].url,
        receiver.received()[0].params,
        receiver.received()[0].headers["X-Twilio-Signature"],
    )

    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None
    listed = client.messages.list(to=HANDSET)
    assert [m.sid for m in listed] == [message.sid]

    with verbal.http() as http:
        inbox = http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
    assert [(m["message_sid"], m["body"], m["from"]) for m in inbox] == [
        (message.sid, "Hello from the SDK", FROM)
    ]


def test_sdk_get_status_callback_is_signed_over_the_query(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={
                "To": HANDSET,
                "From": FROM,
                "Body": "get me",
                "StatusCallback": receiver.url("/cb?app=1"),
                "StatusCallbackMethod": "GET",
            },
        )
    assert response.status_code == 201
    receiver.wait_for(lambda rs: len(rs) >= 3)
    validator = RequestValidator(verbal.auth_token)
    for request in receiver.received():
        assert request.method == "GET"
        assert request.params["app"] == "1"
        assert validator.validate(request.url, {}, request.headers["X-Twilio-Signature"])


def test_sdk_lists_page_by_page(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    sent = [
        client.messages.create(to=HANDSET, from_=FROM, body=f"message {i}").sid for i in range(7)
    ]
    # Newest first, across 4 pages of 2, with no repeats or gaps.
    listed = [m.sid for m in client.messages.list(page_size=2)]
    assert listed == list(reversed(sent))
    first = client.messages.page(page_size=3)
    assert [m.sid for m in first] == list(reversed(sent))[:3]
    second = first.next_page()
    assert [m.sid for m in second] == list(reversed(sent))[3:6]
    assert [m.sid for m in second.previous_page()] == list(reversed(sent))[:3]
    assert [m.sid for m in client.messages.list(from_=FROM, limit=4)] == list(reversed(sent))[:4]


def test_long_and_unicode_bodies_count_segments_like_carriers(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    assert client.messages.create(to=HANDSET, from_=FROM, body="a" * 160).num_segments == "1"
    assert client.messages.create(to=HANDSET, from_=FROM, body="a" * 161).num_segments == "2"
    assert client.messages.create(to=HANDSET, from_=FROM, body="✓" * 71).num_segments == "2"


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"From": FROM, "Body": "x"}, 21604, 400),
        ({"To": HANDSET, "Body": "x"}, 21603, 400),
        ({"To": HANDSET, "From": FROM}, 21602, 400),
        ({"To": "not-a-number", "From": FROM, "Body": "x"}, 21211, 400),
        ({"To": "+1555", "From": FROM, "Body": "x"}, 21211, 400),
        ({"To": HANDSET, "From": "+15550009999", "Body": "x"}, 21606, 400),
        ({"To": "+442079460000", "From": FROM, "Body": "x"}, 21612, 400),
        ({"To": HANDSET, "From": FROM, "Body": "x" * 1601}, 21617, 400),
        ({"To": HANDSET, "From": FROM, "Body": "x", "StatusCallback": "ftp://x"}, 21609, 400),
        ({"To": HANDSET, "From": FROM, "MediaUrl": "not a url"}, 21620, 400),
    ],
)
def test_bad_requests_get_twilio_errors(
    verbal: LiveVerbal, params: dict[str, str], code: int, status: int
) -> None:
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json", data=params
        )
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["message"] and body["more_info"].endswith(str(code))


def test_sdk_raises_twilio_exceptions(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    with pytest.raises(TwilioRestException) as missing:
        client.messages.create(to="+1 nope", from_=FROM, body="x")
    assert (missing.value.status, missing.value.code) == (400, 21211)
    with pytest.raises(TwilioRestException) as unknown:
        client.messages("SM" + "0" * 32).fetch()
    assert (unknown.value.status, unknown.value.code) == (404, 20404)

    from twilio.rest import Client

    wrong = Client(verbal.account_sid, "not-the-token")
    wrong.api.base_url = verbal.base_url
    with pytest.raises(TwilioRestException) as denied:
        wrong.messages.create(to=HANDSET, from_=FROM, body="x")
    assert (denied.value.status, denied.value.code) == (401, 20003)


def test_other_accounts_and_garbage_never_get_a_500(verbal: LiveVerbal) -> None:
    path = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"
    with httpx.Client(base_url=verbal.base_url, timeout=10) as anonymous:
        assert anonymous.get(path).json()["code"] == 20003
        garbled = anonymous.get(path, headers={"Authorization": "Basic !!!notbase64"})
        assert garbled.status_code == 401
    with verbal.http() as http:
        other = http.get("/2010-04-01/Accounts/AC" + "f" * 32 + "/Messages.json")
        assert (other.status_code, other.json()["code"]) == (401, 20003)
        assert http.get(f"{path}?PageSize=0").status_code == 400
        assert http.get(f"{path}?PageToken=bogus").json()["code"] == 20422
        assert http.get("/2010-04-01/nowhere").json()["code"] == 20404
        huge = http.post(
            path,
            content=b"Body=" + b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413 and huge.json()["status"] == 413
        weird = http.post(
            path,
            content=b"\xff\xfe\x00garbage",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert weird.status_code == 400


def test_message_status_progresses_without_callback_url(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    sid = client.messages.create(to=HANDSET, from_=FROM, body="no callback").sid
    wait_until(lambda: client.messages(sid).fetch().status == "delivered", what="delivered")


# -- the resource, field by field -------------------------------------------------------------

PICTURE = "https://media.example.com/cat.jpg"
SOUND = "https://media.example.com/sounds/beep.mp3?size=small"
OPAQUE = "https://media.example.com/blob"


def test_sdk_message_fields_and_its_media(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    before = datetime.now(UTC).replace(microsecond=0)
    message = client.messages.create(
        to="(555) 000-2000", from_=FROM, body="three pictures", media_url=[PICTURE, SOUND, OPAQUE]
    )
    uri = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages/{message.sid}"
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.account_sid == verbal.account_sid
    assert message.messaging_service_sid is None
    assert (message.from_, message.to, message.body) == (FROM, HANDSET, "three pictures")
    assert (message.status, message.direction) == ("queued", "outbound-api")
    assert (message.num_segments, message.num_media) == ("1", "3")
    assert (message.error_code, message.error_message) == (None, None)
    assert (message.price, message.price_unit, message.api_version) == (None, "USD", "2010-04-01")
    assert message.date_created >= before and message.date_updated >= message.date_created
    assert message.date_sent is None
    assert message.uri == uri + ".json"
    assert message.subresource_uris == {
        "media": uri + "/Media.json",
        "feedback": uri + "/Feedback.json",
    }

    media = client.messages(message.sid).media.list()
    assert [m.content_type for m in media] == [
        "image/jpeg",
        "audio/mpeg",
        "application/octet-stream",
    ]
    assert len({m.sid for m in media}) == 3
    for item in media:
        assert item.sid.startswith("ME") and len(item.sid) == 34
        assert item.account_sid == verbal.account_sid
        assert item.parent_sid == message.sid
        assert item.date_created == item.date_updated == message.date_created
        assert item.uri == f"{uri}/Media/{item.sid}.json"
    # Media SIDs are stable: they come from the message and the position, not from a row.
    assert [m.sid for m in client.messages(message.sid).media.list(page_size=1)] == [
        m.sid for m in media
    ]
    assert [m.sid for m in client.messages(message.sid).media.stream(page_size=2)] == [
        m.sid for m in media
    ]
    second = client.messages(message.sid).media(media[1].sid).fetch()
    assert (second.sid, second.content_type, second.parent_sid) == (
        media[1].sid,
        "audio/mpeg",
        message.sid,
    )
    assert twilio_error(client.messages(message.sid).media("ME" + "0" * 32).fetch) == (404, 20404)
    assert twilio_error(client.messages("SM" + "0" * 32).media.list) == (404, 20404)
    text_only = client.messages.create(to=HANDSET, from_=FROM, body="no media")
    assert client.messages(text_only.sid).media.list() == []


def test_sdk_streams_messages_and_filters_by_date_sent(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    sent = [client.messages.create(to=HANDSET, from_=FROM, body=f"m{i}").sid for i in range(5)]
    wait_until(lambda: all(client.messages(sid).fetch().date_sent for sid in sent), what="all sent")
    assert [m.sid for m in client.messages.stream(page_size=2)] == list(reversed(sent))

    # The SDK writes naive datetimes as UTC; a date filter is the day of its value.
    now = datetime.now(UTC).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour = timedelta(hours=1)
    newest_first = list(reversed(sent))
    assert [m.sid for m in client.messages.list(date_sent=today, page_size=2)] == newest_first
    assert client.messages.list(date_sent=today - timedelta(days=1)) == []
    assert client.messages.list(date_sent=today + timedelta(days=1)) == []
    after = client.messages.list(date_sent_after=now - hour, page_size=2)
    assert [m.sid for m in after] == newest_first
    assert client.messages.list(date_sent_after=now + hour) == []
    assert [m.sid for m in client.messages.list(date_sent_before=now + hour)] == newest_first
    assert client.messages.list(date_sent_before=now - hour) == []
    both = client.messages.list(date_sent_after=now - hour, date_sent_before=now + hour, to=HANDSET)
    assert [m.sid for m in both] == newest_first
    # What the SDK sends, and a bare date, by hand; the filters stay on every page's URI.
    with verbal.http() as http:
        path = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"
        page = http.get(path, params={"DateSent": today.date().isoformat(), "PageSize": 2})
        assert [m["sid"] for m in page.json()["messages"]] == newest_first[:2]
        assert "DateSent=" in page.json()["next_page_uri"]
        bad = http.get(path, params={"DateSent>": "last tuesday"})
        assert (bad.status_code, bad.json()["code"]) == (400, 20422)


# -- scheduling, canceling, redacting, deleting -----------------------------------------------


def test_scheduled_message_waits_for_send_at_then_goes_out(
    make_verbal: Callable[..., LiveVerbal], receiver: WebhookReceiver
) -> None:
    verbal = make_verbal(schedule_min_lead_seconds=1)
    verbal.add_number(FROM)
    client = verbal.twilio()
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    message = client.messages.create(
        to=HANDSET,
        from_=FROM,
        body="later",
        schedule_type="fixed",
        send_at=send_at.replace(tzinfo=None),
        status_callback=receiver.url(),
    )
    assert message.status == "scheduled"
    assert client.messages(message.sid).fetch().status == "scheduled"
    receiver.wait_for(lambda rs: statuses(receiver, message.sid) == ["scheduled"])
    fetched = wait_until(
        lambda: (m := client.messages(message.sid).fetch()).status == "delivered" and m,
        what="the scheduled message to be delivered",
    )
    assert fetched.date_sent >= send_at
    receiver.wait_for(lambda rs: len(rs) >= 4)
    assert statuses(receiver, message.sid) == ["scheduled", "queued", "sent", "delivered"]
    with verbal.http() as http:
        inbox = http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
    assert [m["message_sid"] for m in inbox] == [message.sid]


def test_cancel_redact_and_delete(verbal: LiveVerbal, receiver: WebhookReceiver) -> None:
    client = verbal.twilio()
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    scheduled = client.messages.create(
        to=HANDSET,
        from_=FROM,
        body="secret plan",
        schedule_type="fixed",
        send_at=later,
        status_callback=receiver.url(),
    )
    # Neither redacted nor deleted while it may still go out.
    assert twilio_error(client.messages(scheduled.sid).update, body="") == (400, 20009)
    assert twilio_error(client.messages(scheduled.sid).delete) == (400, 20009)
    canceled = client.messages(scheduled.sid).update(status="canceled")
    assert (canceled.sid, canceled.status, canceled.body) == (
        scheduled.sid,
        "canceled",
        "secret plan",
    )
    assert twilio_error(client.messages(scheduled.sid).update, status="canceled") == (400, 30409)
    receiver.wait_for(lambda rs: statuses(receiver, scheduled.sid) == ["scheduled", "canceled"])

    sent = client.messages.create(to=HANDSET, from_=FROM, body="redact me")
    assert twilio_error(client.messages(sent.sid).update, status="canceled") == (400, 30409)
    wait_until(lambda: client.messages(sent.sid).fetch().status == "delivered", what="delivered")
    assert twilio_error(client.messages(sent.sid).update, body="other text") == (400, 20422)
    assert twilio_error(client.messages(sent.sid).update, status="sent") == (400, 20422)
    redacted = client.messages(sent.sid).update(body="")
    assert (redacted.status, redacted.body, redacted.to) == ("delivered", "", HANDSET)
    assert client.messages(sent.sid).fetch().body == ""

    assert client.messages(sent.sid).delete() is True
    assert twilio_error(client.messages(sent.sid).fetch) == (404, 20404)
    assert twilio_error(client.messages(sent.sid).delete) == (404, 20404)
    assert twilio_error(client.messages(sent.sid).update, body="") == (404, 20404)
    # The canceled message is final, and its callbacks are delivered: it can go too.
    wait_until(lambda: client.messages(scheduled.sid).delete(), what="the canceled one deleted")
    assert [m.sid for m in client.messages.list()] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"ScheduleType": "fixed"}, 35111),
        ({"SendAt": "2099-01-01T00:00:00Z"}, 35111),
        ({"ScheduleType": "sometime", "SendAt": "2099-01-01T00:00:00Z"}, 35126),
        ({"ScheduleType": "fixed", "SendAt": "tomorrow"}, 35114),
        ({"ScheduleType": "fixed", "SendAt": "2099-01-01T00:00:00Z"}, 35114),
        ({"ScheduleType": "fixed", "SendAt": "2001-01-01T00:00:00Z"}, 35114),
        ({"ApplicationSid": "AP" + "0" * 32}, 21218),
        ({"StatusCallback": "http://["}, 21609),
    ],
)
def test_bad_schedules_and_applications_get_twilio_errors(
    verbal: LiveVerbal, params: dict[str, str], code: int
) -> None:
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": HANDSET, "From": FROM, "Body": "x", **params},
        )
    assert (response.status_code, response.json()["code"]) == (400, code), response.text
    assert verbal.twilio().messages.list() == []


def test_soon_send_at_is_refused_with_the_default_lead(verbal: LiveVerbal) -> None:
    soon = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=30)
    client = verbal.twilio()
    assert twilio_error(
        client.messages.create,
        to=HANDSET,
        from_=FROM,
        body="x",
        schedule_type="fixed",
        send_at=soon,
    ) == (400, 35114)


def test_application_sid_sends_status_callbacks_to_the_application(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    client = verbal.twilio()
    application = verbal.add_app(
        "rcml", "http://127.0.0.1:9/unused", sms_status_callback=receiver.url("/app-status")
    )
    by_app = client.messages.create(
        to=HANDSET, from_=FROM, body="via app", application_sid=application.sid
    )
    own = client.messages.create(
        to=HANDSET,
        from_=FROM,
        body="own callback",
        application_sid=application.sid,
        status_callback=receiver.url("/own-status"),
    )
    receiver.wait_for(lambda rs: len(rs) >= 6)
    assert [r.params["MessageSid"] for r in receiver.received("/app-status")] == [by_app.sid] * 3
    assert [r.params["MessageSid"] for r in receiver.received("/own-status")] == [own.sid] * 3
    assert statuses(receiver, by_app.sid) == ["queued", "sent", "delivered"]
    validator = RequestValidator(verbal.auth_token)
    for request in receiver.received():
        assert request.method == "POST"
        assert validator.validate(
            request.url, request.params, request.headers["X-Twilio-Signature"]
        )


def test_other_accounts_messages_are_not_found(verbal: LiveVerbal) -> None:
    other = other_account(verbal, "+15550001999")
    theirs = other.messages.create(
        to=HANDSET, from_="+15550001999", body="private", media_url=[PICTURE]
    )
    client = verbal.twilio()
    assert twilio_error(client.messages(theirs.sid).fetch) == (404, 20404)
    assert twilio_error(client.messages(theirs.sid).update, status="canceled") == (404, 20404)
    assert twilio_error(client.messages(theirs.sid).delete) == (404, 20404)
    assert twilio_error(client.messages(theirs.sid).media.list) == (404, 20404)
    assert client.messages.list() == []
    # Theirs is untouched, and they still see it.
    assert other.messages(theirs.sid).fetch().body == "private"
    assert twilio_error(client.messages.create, to=HANDSET, from_="+15550001999", body="x") == (
        400,
        21606,
    )
