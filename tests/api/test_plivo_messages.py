"""Plivo's Message API driven by the unmodified `plivo` SDK against a live Verbal."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import plivo
import pytest
from plivo.exceptions import AuthenticationError, ResourceNotFoundError, ValidationError
from plivo.utils import validate_v3_signature

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until

FROM = "+15550001000"
HANDSET = "+15550002000"
OTHER_HANDSET = "+15550003000"


def inbox(verbal: LiveVerbal, handset: str) -> list[dict[str, Any]]:
    with verbal.http() as http:
        response = http.get(f"/sandbox/handsets/{handset}/inbox")
    assert response.status_code == 200
    return list(response.json()["messages"])


def reports(receiver: WebhookReceiver, message_uuid: str) -> list[str]:
    return [
        r.params["Status"] for r in receiver.received() if r.params["MessageUUID"] == message_uuid
    ]


def test_sdk_send_is_delivered_and_reported_in_plivo_format(
    verbal: LiveVerbal, receiver: WebhookReceiver, client: Any
) -> None:
    response = client.messages.create(
        src=FROM, dst=HANDSET, text="Hello from the Plivo SDK", url=receiver.url()
    )
    assert response.message == "message(s) queued"
    assert uuid.UUID(response.api_id).version == 4
    assert len(response.message_uuid) == 1
    message_uuid = response.message_uuid[0]
    assert str(uuid.UUID(message_uuid)) == message_uuid
    assert not hasattr(response, "invalid_number")

    receiver.wait_for(lambda rs: len(rs) >= 3)
    assert reports(receiver, message_uuid) == ["queued", "sent", "delivered"]
    for request in receiver.received():
        assert request.method == "POST"
        params = request.params
        assert (params["From"], params["To"], params["Type"]) == (FROM, HANDSET, "sms")
        assert params["Units"] == "1" and "ErrorCode" not in params
        assert validate_v3_signature(
            "POST",
            request.url,
            request.headers["X-Plivo-Signature-V3-Nonce"],
            verbal.auth_token,
            request.headers["X-Plivo-Signature-V3"],
            {name: [value] for name, value in request.form},
        )

    received = inbox(verbal, HANDSET)
    assert [(m["body"], m["from"]) for m in received] == [("Hello from the Plivo SDK", FROM)]


def test_sdk_bulk_send_makes_one_message_per_destination(
    verbal: LiveVerbal, receiver: WebhookReceiver, client: Any
) -> None:
    response = client.messages.create(
        src=FROM,
        dst=f"{HANDSET}<{OTHER_HANDSET}<{HANDSET}",  # duplicates are dropped
        text="to everyone",
        url=receiver.url("/dlr"),
        method="GET",
    )
    assert len(response.message_uuid) == 2 and len(set(response.message_uuid)) == 2
    receiver.wait_for(lambda rs: len(rs) >= 6)
    for message_uuid in response.message_uuid:
        assert reports(receiver, message_uuid) == ["queued", "sent", "delivered"]
    assert {r.method for r in receiver.received()} == {"GET"}
    for handset in (HANDSET, OTHER_HANDSET):
        assert [m["body"] for m in inbox(verbal, handset)] == ["to everyone"]
    destinations = {client.messages.get(u).to_number for u in response.message_uuid}
    assert destinations == {HANDSET[1:], OTHER_HANDSET[1:]}


def test_sdk_bulk_send_given_a_list(verbal: LiveVerbal, client: Any) -> None:
    # plivo-python 4.63 sends a list as its repr ("['+1…', '+1…']"), not joined with "<".
    response = client.messages.create(src=FROM, dst=[HANDSET, OTHER_HANDSET], text="listed")
    assert len(response.message_uuid) == 2
    for handset in (HANDSET, OTHER_HANDSET):
        wait_until(lambda h=handset: inbox(verbal, h), what=f"a message to {handset}")
        assert [m["body"] for m in inbox(verbal, handset)] == ["listed"]


def test_bulk_send_lists_invalid_destinations_instead_of_failing(
    verbal: LiveVerbal, client: Any
) -> None:
    response = client.messages.create(
        src=FROM, dst=f"{HANDSET}<not-a-number<+442079460000", text="some of you"
    )
    assert len(response.message_uuid) == 1
    assert response.invalid_number == ["not-a-number", "+442079460000"]
    wait_until(lambda: inbox(verbal, HANDSET), what="the valid destination's message")
    # Nobody valid at all: the request fails as a whole.
    with pytest.raises(ValidationError):
        client.messages.create(src=FROM, dst="not-a-number<+442079460000", text="nobody")


def test_sdk_get_returns_the_plivo_message_object(
    verbal: LiveVerbal, auth_id: str, client: Any
) -> None:
    message_uuid = client.messages.create(src=FROM, dst=HANDSET, text="a" * 161).message_uuid[0]
    wait_until(
        lambda: client.messages.get(message_uuid).message_state == "delivered", what="delivered"
    )
    message = client.messages.get(message_uuid)
    assert message.id == message_uuid
    assert (message.from_number, message.to_number) == (FROM[1:], HANDSET[1:])
    assert message.message_direction == "outbound"
    assert message.message_type == "sms"
    assert message.units == 2
    assert (message.total_amount, message.total_rate) == ("0.00000", "0.00000")
    assert message.error_code is None
    assert message.message_time.endswith("+00:00") and len(message.message_time) == 25
    assert message.message_sent_time is not None
    assert message.resource_uri == f"/v1/Account/{auth_id}/Message/{message_uuid}/"
    assert uuid.UUID(message.api_id)


def test_sdk_lists_page_by_limit_and_offset(verbal: LiveVerbal, client: Any) -> None:
    sent = [
        client.messages.create(src=FROM, dst=HANDSET, text=f"message {i}").message_uuid[0]
        for i in range(5)
    ]
    newest_first = list(reversed(sent))
    first = client.messages.list(limit=2)
    assert [m.message_uuid for m in first] == newest_first[:2]
    assert first.meta["total_count"] == 5
    assert first.meta["previous"] is None
    assert "limit=2&offset=2" in first.meta["next"]
    second = client.messages.list(limit=2, offset=2)
    assert [m.message_uuid for m in second] == newest_first[2:4]
    assert "offset=0" in second.meta["previous"]
    last = client.messages.list(limit=2, offset=4)
    assert [m.message_uuid for m in last] == newest_first[4:]
    assert last.meta["next"] is None
    filtered = client.messages.list(to_number=HANDSET[1:], message_direction="outbound")
    assert len(filtered) == 5
    assert len(client.messages.list(message_direction="inbound")) == 0
    assert len(client.messages.list(to_number=OTHER_HANDSET[1:])) == 0


def test_sdk_raises_plivo_exceptions(verbal: LiveVerbal, auth_id: str, client: Any) -> None:
    with pytest.raises(ValidationError) as not_owned:
        client.messages.create(src="+15550009999", dst=HANDSET, text="x")
    assert "+15550009999" in str(not_owned.value)
    with pytest.raises(ResourceNotFoundError):
        client.messages.get(str(uuid.uuid4()))

    wrong = plivo.RestClient(auth_id, "not-the-token")
    with pytest.raises(AuthenticationError):
        wrong.messages.create(src=FROM, dst=HANDSET, text="x")
    assert inbox(verbal, HANDSET) == []


def test_errors_have_plivo_shape_and_status(verbal: LiveVerbal, auth_id: str) -> None:
    path = f"/v1/Account/{auth_id}/Message/"

    def assert_error(response: httpx.Response, status: int) -> None:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"api_id", "error"} and body["error"]
        assert uuid.UUID(body["api_id"])

    with httpx.Client(base_url=verbal.base_url, timeout=10) as anonymous:
        assert_error(anonymous.get(path), 401)
    with verbal.http() as http:
        # Another account's auth id in the path: not yours, whatever the credentials.
        assert_error(http.get("/v1/Account/MA" + "Z" * 18 + "/Message/"), 401)
        assert_error(http.get(f"{path}?limit=21"), 400)
        assert_error(http.get(f"{path}?offset=-1"), 400)
        assert_error(http.get(f"{path}not-a-uuid/"), 404)
        assert_error(http.get(f"{path}?from_number=%00"), 400)
        assert_error(http.post(path, json={"src": FROM, "dst": HANDSET, "text": "a\x00"}), 400)
        assert_error(
            http.post(path, content=b"{oops", headers={"Content-Type": "application/json"}), 400
        )
        assert_error(http.post(path, json={"src": FROM, "text": "x"}), 400)
        assert_error(http.post(path, json={"src": FROM, "dst": HANDSET}), 400)
        assert_error(http.post(path, json={"dst": HANDSET, "text": "x"}), 400)
        assert_error(http.post(path, json={"src": FROM, "dst": FROM, "text": "x"}), 400)
        assert_error(
            http.post(path, json={"src": FROM, "dst": HANDSET, "text": "x", "url": "ftp://x"}),
            400,
        )
        assert_error(
            http.post(path, json={"src": FROM, "dst": HANDSET, "text": "x", "type": "fax"}), 400
        )
        # The sender is the one being refused: nothing reached anyone.
        assert_error(
            http.post(path, json={"src": "+15550009999", "dst": HANDSET, "text": "x"}), 400
        )
    assert inbox(verbal, HANDSET) == []


def test_form_encoded_send_is_accepted(verbal: LiveVerbal, auth_id: str) -> None:
    with verbal.http() as http:
        response = http.post(
            f"/v1/Account/{auth_id}/Message/",
            data={"src": FROM[1:], "dst": "1 (555) 000-2000", "text": "by form"},
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["message"] == "message(s) queued" and len(body["message_uuid"]) == 1
    wait_until(lambda: inbox(verbal, HANDSET), what="the form-sent message")
    assert [m["body"] for m in inbox(verbal, HANDSET)] == ["by form"]
