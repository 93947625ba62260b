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


@pytest.mark.parametrize(
    "keyword", ["STOPALL", "unsubscribe", "Cancel", "end", "QUIT", "revoke", "unsub", "Stop All"]
)
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


def service_with_pool(verbal: LiveVerbal, *numbers: str) -> tuple[Any, str]:
    """The SDK (messaging domain pointed here) and a new service holding `numbers`."""
    client = verbal.twilio()
    client.messaging.base_url = verbal.base_url
    service = client.messaging.v1.services.create(friendly_name="Pool")
    sids = {n.phone_number: n.sid for n in client.incoming_phone_numbers.list()}
    for number in numbers:
        client.messaging.v1.services(service.sid).phone_numbers.create(
            phone_number_sid=sids[number]
        )
    return client, service.sid


def test_a_stop_to_a_pool_number_opts_out_of_the_whole_service(verbal: LiveVerbal) -> None:
    outside = "+15550001002"
    for number in (OTHER_NUMBER, outside):
        verbal.add_number(number)
    client, service_sid = service_with_pool(verbal, FROM, OTHER_NUMBER)

    text_from_handset(verbal, HANDSET, "stop", to=OTHER_NUMBER)
    [confirmation] = wait_for_inbox(verbal, HANDSET, 1)
    assert (confirmation["from"], confirmation["body"]) == (
        OTHER_NUMBER,
        DEFAULT_REPLIES[Keyword.OPT_OUT],
    )
    # Refused from every number of the pool, and through the service (whatever number it
    # picks, and with a From outside the pool): the scope is the service.
    for from_ in (FROM, OTHER_NUMBER):
        error = refused(client, from_=from_)
        assert (error.status, error.code) == (400, 21610)
        assert f"opted out of messages from the Messaging Service {service_sid}" in error.msg
    for extra in ({}, {"from_": outside}):
        with pytest.raises(TwilioRestException) as through_service:
            client.messages.create(
                to=HANDSET, messaging_service_sid=service_sid, body="promo", **extra
            )
        assert (through_service.value.status, through_service.value.code) == (400, 21610)
    # A number out of the pool, sending on its own, may still text the handset; the pool
    # may still text other handsets.
    assert client.messages.create(to=HANDSET, from_=outside, body="own").status == "queued"
    other = client.messages.create(to=OTHER_HANDSET, messaging_service_sid=service_sid, body="hi")
    assert (other.status, other.messaging_service_sid) == ("queued", service_sid)

    # The opt-out lists under the service, through the API and the CLI's store alike.
    with verbal.http() as http:
        listed = http.get("/verbal/v1/opt-outs").json()["opt_outs"]
    assert [(o["scope"], o["scope_type"], o["recipient"]) for o in listed] == [
        (service_sid, "messaging_service", HANDSET)
    ]

    # START to the other pool number lifts it for the whole service.
    text_from_handset(verbal, HANDSET, "Start", to=FROM)
    texts = wait_for_inbox(verbal, HANDSET, 3)
    assert (texts[2]["from"], texts[2]["body"]) == (FROM, DEFAULT_REPLIES[Keyword.OPT_IN])
    back = client.messages.create(to=HANDSET, messaging_service_sid=service_sid, body="back")
    assert (back.status, back.messaging_service_sid) == ("queued", service_sid)
    assert client.messages.create(to=HANDSET, from_=OTHER_NUMBER, body="again").status == "queued"
    with verbal.http() as http:
        assert http.get("/verbal/v1/opt-outs").json() == {"opt_outs": []}


def replies(verbal: LiveVerbal, change: dict[str, Any] | None = None) -> dict[str, Any]:
    with verbal.http() as http:
        if change is None:
            response = http.get("/verbal/v1/opt-outs/replies")
        else:
            response = http.post("/verbal/v1/opt-outs/replies", json=change)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_account_changes_its_replies_or_switches_them_off(verbal: LiveVerbal) -> None:
    assert replies(verbal) == {
        "opt_out": {"mode": "default", "text": DEFAULT_REPLIES[Keyword.OPT_OUT]},
        "opt_in": {"mode": "default", "text": DEFAULT_REPLIES[Keyword.OPT_IN]},
        "help": {"mode": "default", "text": DEFAULT_REPLIES[Keyword.HELP]},
    }
    # Its own STOP reply, no START reply (blanks are none), HELP left as it is.
    changed = replies(verbal, {"opt_out": "Bye from Acme. START to return.", "opt_in": "  "})
    assert changed == {
        "opt_out": {"mode": "custom", "text": "Bye from Acme. START to return."},
        "opt_in": {"mode": "off", "text": None},
        "help": {"mode": "default", "text": DEFAULT_REPLIES[Keyword.HELP]},
    }
    assert replies(verbal) == changed

    text_from_handset(verbal, HANDSET, "STOP")
    assert wait_for_inbox(verbal, HANDSET, 1)[0]["body"] == "Bye from Acme. START to return."
    assert refused(verbal.twilio()).code == 21610
    # START lifts the opt-out without a reply: the next text the handset gets is HELP's.
    start_sid = text_from_handset(verbal, HANDSET, "START")
    text_from_handset(verbal, HANDSET, "HELP")
    texts = wait_for_inbox(verbal, HANDSET, 2)
    assert [t["body"] for t in texts] == [
        "Bye from Acme. START to return.",
        DEFAULT_REPLIES[Keyword.HELP],
    ]
    assert verbal.twilio().messages(start_sid).fetch().body == "START"
    assert verbal.twilio().messages.create(to=HANDSET, from_=FROM, body="hi").status == "queued"

    # null puts the default back; the reply's limit is a message's; unknown keys are refused.
    assert replies(verbal, {"opt_in": None})["opt_in"] == {
        "mode": "default",
        "text": DEFAULT_REPLIES[Keyword.OPT_IN],
    }
    with verbal.http() as http:
        too_long = http.post("/verbal/v1/opt-outs/replies", json={"help": "x" * 1601})
        unknown = http.post("/verbal/v1/opt-outs/replies", json={"stop": "bye"})
        nul = http.post("/verbal/v1/opt-outs/replies", json={"help": "a\x00b"})
    assert [r.status_code for r in (too_long, unknown, nul)] == [400, 400, 400]
    assert {r.json()["code"] for r in (too_long, unknown, nul)} == {20422}
    assert replies(verbal)["help"]["mode"] == "default"
