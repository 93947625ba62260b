"""Verbal with an SMPP carrier, end to end: node-smpp is the carrier's SMSC, on loopback.

A message sent with the twilio SDK leaves as submit_sm, its receipt comes back as a
deliver_sm, and the status callbacks say queued, sent, delivered; a text from the SMSC
reaches the number's app, whose reply leaves the same way; `verbal carriers list` shows
the binds the server holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.carriers.conftest import Smscs
from tests.conftest import AppHit, AppServer, LiveVerbal, WebhookReceiver, wait_until
from tests.peers.node import NodeSmsc
from verbal.runtime import Runtime
from verbal.store.models import Message

PASSWORD = "e2e-pw"
NUMBER = "+15550001000"
UK = "+447700900123"


def smpp_carrier(name: str, smsc: NodeSmsc | int, **settings: Any) -> dict[str, Any]:
    port = smsc if isinstance(smsc, int) else smsc.port
    values = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "system_id": "verbal",
        "password": PASSWORD,
        "prefixes": ["+44"],
        "reconnect_min_seconds": 0.05,
        "reconnect_max_seconds": 0.5,
    }
    values.update(settings)
    return values


def start(
    make_verbal: Callable[..., LiveVerbal],
    *carriers: dict[str, Any],
    database_url: str | None = None,
) -> LiveVerbal:
    verbal = make_verbal(database_url, carriers=list(carriers), carrier_status_seconds=0.2)
    verbal.add_number(NUMBER)
    return verbal


def statuses(receiver: WebhookReceiver, sid: str) -> list[str]:
    return [r.params["MessageStatus"] for r in receiver.received() if r.params["MessageSid"] == sid]


def test_a_message_goes_out_over_smpp_and_its_receipt_comes_back(
    smscs: Smscs,
    make_verbal: Callable[..., LiveVerbal],
    receiver: WebhookReceiver,
    database_url: str,
) -> None:
    smsc = smscs.start(password=PASSWORD, receipt_first=True)
    verbal = start(make_verbal, smpp_carrier("acme", smsc), database_url=database_url)
    client = verbal.twilio()
    long_text = "A long one over SMPP, with a euro sign € in it. " * 5
    message = client.messages.create(
        to=UK, from_=NUMBER, body="Hello over SMPP €", status_callback=receiver.url()
    )
    long = client.messages.create(
        to=UK, from_=NUMBER, body=long_text, status_callback=receiver.url()
    )
    submit = smsc.wait_event("submit", dest=UK.removeprefix("+"))
    assert (submit["text"], submit["source"], submit["source_ton"], submit["dest_ton"]) == (
        "Hello over SMPP €",
        NUMBER.removeprefix("+"),
        1,
        1,
    )
    assert submit["registered_delivery"] == 1
    receiver.wait_for(lambda requests: "delivered" in statuses(receiver, message.sid))
    assert statuses(receiver, message.sid) == ["queued", "sent", "delivered"]
    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "delivered"
    assert fetched.error_code is None
    receiver.wait_for(lambda requests: "delivered" in statuses(receiver, long.sid))
    assert statuses(receiver, long.sid) == ["queued", "sent", "delivered"]
    assert client.messages(long.sid).fetch().num_segments == "2"


def test_an_undelivered_receipt_carries_the_carriers_error_to_the_callback(
    smscs: Smscs, make_verbal: Callable[..., LiveVerbal], receiver: WebhookReceiver
) -> None:
    smsc = smscs.start(password=PASSWORD, receipt_stat="UNDELIV", receipt_err="001")
    verbal = start(make_verbal, smpp_carrier("acme", smsc))
    message = verbal.twilio().messages.create(
        to=UK, from_=NUMBER, body="nobody home", status_callback=receiver.url()
    )
    receiver.wait_for(lambda requests: "undelivered" in statuses(receiver, message.sid))
    last = [r for r in receiver.received() if r.params["MessageSid"] == message.sid][-1]
    assert last.params["ErrorCode"] == "30003"
    fetched = verbal.twilio().messages(message.sid).fetch()
    assert fetched.error_code == 30003
    assert "stat:UNDELIV" in fetched.error_message and "err:001" in fetched.error_message


def test_a_text_from_the_smsc_reaches_the_numbers_app_and_the_reply_goes_back(
    smscs: Smscs, make_verbal: Callable[..., LiveVerbal], app_server: AppServer
) -> None:
    def reply(hit: AppHit) -> tuple[int, str, str]:
        body = hit.form["Body"]
        return 200, "text/xml", f"<Response><Message>pong: {body}</Message></Response>"

    app_server.routes["/sms"] = reply
    smsc = smscs.start(password=PASSWORD)
    verbal = start(make_verbal, smpp_carrier("acme", smsc))
    verbal.add_app("rcml", app_server.url("/sms"), NUMBER)
    wait_until(lambda: smsc.of("bind"), what="the bind")
    smsc.send("mo", tag="ping", source=UK.removeprefix("+"), dest="15550001000", text="ping ✓")
    assert smsc.wait_event("deliver_resp", tag="ping")["status"] == 0
    hit = wait_until(lambda: app_server.hits_for("/sms"), what="the app's request")[0]
    assert (hit.form["From"], hit.form["To"], hit.form["Body"]) == (UK, NUMBER, "ping ✓")
    answer = smsc.wait_event("submit", dest=UK.removeprefix("+"))
    assert answer["text"] == "pong: ping ✓"
    assert answer["data_coding"] == 8  # ✓ is not GSM-7


@pytest.mark.parametrize("trouble", ["down", "rejects"])
def test_failover_to_the_next_carrier(
    smscs: Smscs,
    make_verbal: Callable[..., LiveVerbal],
    receiver: WebhookReceiver,
    trouble: str,
) -> None:
    backup = smscs.start(password=PASSWORD)
    if trouble == "down":
        primary: NodeSmsc | int = 1  # nothing listens on port 1
    else:
        primary = smscs.start(password=PASSWORD, submit_status=0x0B)  # ESME_RINVDSTADR
    verbal = start(
        make_verbal,
        smpp_carrier("primary", primary, priority=1),
        smpp_carrier("backup", backup, priority=2),
    )
    message = verbal.twilio().messages.create(
        to=UK, from_=NUMBER, body=f"failover when {trouble}", status_callback=receiver.url()
    )
    backup.wait_event("submit", text=f"failover when {trouble}")
    receiver.wait_for(lambda requests: "delivered" in statuses(receiver, message.sid))
    assert statuses(receiver, message.sid) == ["queued", "sent", "delivered"]

    async def carrier_of(runtime: Runtime) -> str | None:
        async with runtime.sessions() as session:
            query = select(Message.carrier).where(Message.sid == message.sid)
            return await session.scalar(query)

    assert verbal.call(carrier_of) == "backup"


def test_carriers_list_shows_the_binds_a_running_server_holds(
    smscs: Smscs, make_verbal: Callable[..., LiveVerbal]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    carriers = [
        smpp_carrier("acme", smsc, binds=2, window=7),
        smpp_carrier("wrongpw", smsc, password="nope", prefixes=["+33"]),
    ]
    verbal = start(make_verbal, *carriers)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VERBAL_")},
        "VERBAL_DATABASE_URL": verbal.settings.database_url,
        "VERBAL_CARRIERS": json.dumps(carriers),
        "VERBAL_CARRIER_STATUS_SECONDS": "0.2",
    }

    def listed() -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "verbal", "carriers", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rows = {row["name"]: row for row in json.loads(done.stdout)}
        binds = {b["bind"]: b for row in rows.values() for b in row.get("binds", [])}
        ready = binds.get("acme#1", {}).get("state") == "bound" and binds.get("wrongpw#1", {}).get(
            "last_error"
        )
        return ready and (rows, binds)

    rows, binds = wait_until(listed, what="both carriers reported")
    assert rows["acme"]["kind"] == "smpp" and rows["acme"]["reaches"] == ["+44"]
    assert {binds["acme#1"]["state"], binds["acme#2"]["state"]} == {"bound"}
    assert (binds["acme#1"]["window"], binds["acme#1"]["in_flight"]) == (7, 0)
    assert binds["wrongpw#1"]["state"] != "bound"
    assert "wrong password" in binds["wrongpw#1"]["last_error"]
    table = subprocess.run(
        [sys.executable, "-m", "verbal", "carriers", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "acme#1" in table and "wrong password" in table
    assert PASSWORD not in table and "nope" not in table
