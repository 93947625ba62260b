"""Twilio's Messages API driven by the unmodified `twilio` SDK against a live Verbal."""

from __future__ import annotations

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

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
