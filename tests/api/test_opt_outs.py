"""Opt-outs through the APIs: a sandbox handset texts STOP, START and HELP to a number, reads
the confirmations in its inbox, and the unmodified `twilio` and `plivo` SDKs find their sends
to it refused (21610; Plivo's STOP reason) until it opts back in."""

from __future__ import annotations

from typing import Any

import pytest
from plivo.exceptions import ValidationError
from twilio.base.exceptions import TwilioRestException

from tests.conftest import LiveVerbal, wait_until
from verbal.messaging.optouts import DEFAULT_REPLIES, Keyword

FROM = "+15550001000"
OTHER_NUMBER = "+15550001001"
HANDSET = "+15550002000"
OTHER_HANDSET = "+15550003000"


def text_from_handset(verbal: LiveVerbal, handset: str, body: str, to: str = FROM) -> str:
    with verbal.http() as http:
        response = http.post(f"/sandbox/handsets/{handset}/messages", json={"to": to, "body": body})
    assert response.status_code == 201, response.text
    return str(response.json()["message_sid"])


def inbox(verbal: LiveVerbal, handset: str) -> list[dict[str, Any]]:
    """What the handset received, oldest first."""
    with verbal.http() as http:
        response = http.get(f"/sandbox/handsets/{handset}/inbox")
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["messages"]))


def wait_for_inbox(verbal: LiveVerbal, handset: str, count: int) -> list[dict[str, Any]]:
    return wait_until(
        lambda: texts if len(texts := inbox(verbal, handset)) >= count else None,
        what=f"{count} text(s) on {handset}",
    )


def refused(client: Any, to: str = HANDSET, from_: str = FROM) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=to, from_=from_, body="are you there?")
    return raised.value


def test_stop_help_start_round_trip_through_the_twilio_sdk(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    # Positive control: the handset can be texted before it says STOP.
    before = client.messages.create(to=HANDSET, from_=FROM, body="before")
    wait_for_inbox(verbal, HANDSET, 1)

    stop_sid = text_from_handset(verbal, HANDSET, "  sToP \n")
    texts = wait_for_inbox(verbal, HANDSET, 2)
    confirmation = texts[1]
    assert confirmation["body"] == DEFAULT_REPLIES[Keyword.OPT_OUT]
    assert (confirmation["from"], confirmation["to"]) == (FROM, HANDSET)
    # The confirmation is a message of the account like any other, a reply to the STOP.
    reply = client.messages(confirmation["message_sid"]).fetch()
    assert (reply.direction, reply.from_, reply.to) == ("outbound-reply", FROM, HANDSET)
    assert reply.body == DEFAULT_REPLIES[Keyword.OPT_OUT]
    # The STOP itself is recorded as an inbound message, as sent.
    stop = client.messages(stop_sid).fetch()
    assert (stop.direction, stop.from_, stop.to, stop.body) == (
        "inbound",
        HANDSET,
        FROM,
        "  sToP \n",
    )

    error = refused(client)
    assert (error.status, error.code) == (400, 21610)
    # The SDK puts its own words first.
    assert error.msg.startswith("Unable to create record: Attempt to send to unsubscribed")
    assert HANDSET in error.msg and FROM in error.msg
    assert error.method == "POST"
    # Refused messages are not stored: the account holds the three messages so far.
    assert {m.sid for m in client.messages.list()} == {before.sid, stop_sid, reply.sid}

    # The opt-out belongs to the number: the account's other number may still text, and
    # the number may still text other handsets.
    verbal.add_number(OTHER_NUMBER)
    assert client.messages.create(to=HANDSET, from_=OTHER_NUMBER, body="other").status == "queued"
    assert client.messages.create(to=OTHER_HANDSET, from_=FROM, body="hi").status == "queued"
    assert wait_for_inbox(verbal, HANDSET, 3)[2]["body"] == "other"

    # HELP is answered and changes nothing.
    text_from_handset(verbal, HANDSET, "Help")
    assert wait_for_inbox(verbal, HANDSET, 4)[3]["body"] == DEFAULT_REPLIES[Keyword.HELP]
    assert refused(client).code == 21610

    # A text that only contains a keyword is no keyword.
    text_from_handset(verbal, HANDSET, "start over please")
    assert refused(client).code == 21610

    # A synonym of START lifts it; its confirmation comes, then the send goes through.
    text_from_handset(verbal, HANDSET, "unstop")
    assert wait_for_inbox(verbal, HANDSET, 5)[4]["body"] == DEFAULT_REPLIES[Keyword.OPT_IN]
    after = client.messages.create(to=HANDSET, from_=FROM, body="welcome back")
    assert after.status == "queued"
    texts = wait_for_inbox(verbal, HANDSET, 6)
    assert (texts[5]["message_sid"], texts[5]["body"]) == (after.sid, "welcome back")
    assert [t["from"] for t in texts] == [FROM, FROM, OTHER_NUMBER, FROM, FROM, FROM]


@pytest.mark.parametrize("keyword", ["STOPALL", "unsubscribe", "Cancel", "end", "QUIT", "revoke"])
def test_every_opt_out_synonym_opts_out(verbal: LiveVerbal, keyword: str) -> None:
    text_from_handset(verbal, HANDSET, keyword)
    assert wait_for_inbox(verbal, HANDSET, 1)[0]["body"] == DEFAULT_REPLIES[Keyword.OPT_OUT]
    assert refused(verbal.twilio()).code == 21610


def test_restcomm_and_plivo_refuse_a_send_to_an_opted_out_recipient(
    verbal: LiveVerbal, client: Any
) -> None:
    text_from_handset(verbal, HANDSET, "STOP")
    wait_for_inbox(verbal, HANDSET, 1)

    # Restcomm's API speaks Twilio's codes.
    with verbal.http() as http:
        response = http.post(
            f"/restcomm/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages.json",
            data={"From": FROM, "To": HANDSET, "Body": "hello"},
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == 21610
    assert body["message"].startswith("Attempt to send to unsubscribed recipient")

    # Plivo: the opted-out destination is dropped from a bulk send, the others are sent...
    answer = client.messages.create(src=FROM, dst=f"{HANDSET}<{OTHER_HANDSET}", text="bulk")
    assert answer.invalid_number == [HANDSET]
    assert len(answer.message_uuid) == 1
    assert wait_for_inbox(verbal, OTHER_HANDSET, 1)[0]["body"] == "bulk"
    # ... and a send to it alone fails with the reason Plivo gives for its error 200.
    with pytest.raises(ValidationError) as plivo_refused:
        client.messages.create(src=FROM, dst=HANDSET, text="alone")
    assert "Source number blocked by STOP from the destination" in str(plivo_refused.value)
    assert [t["body"] for t in inbox(verbal, HANDSET)] == [DEFAULT_REPLIES[Keyword.OPT_OUT]]
