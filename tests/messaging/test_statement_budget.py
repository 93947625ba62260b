"""The hot path's budget of SQL statements per message, pinned so that it cannot creep back.

200 messages go through a live server the way users send them (the Twilio API, several at
a time) to the sandbox, each with a status callback, and every statement the server sends to
SQLite while they travel is counted: the journal's (each `executemany` is one statement, and
each of its transactions a BEGIN and a COMMIT) and everything else through SQLAlchemy
(authentication, look-ups, polls). docs/architecture.md sets the budget: 6 statements per
message, from the API's accept to the last of its three callbacks. Sends that name a
Messaging Service instead of a `From` keep it: the pool, the numbers' services and the
opt-outs come from caches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until

MESSAGES = 200
BUDGET = 6.0


async def flushed(runtime: Any) -> None:
    await runtime.journal.flushed()


def service_sending_from(server: LiveVerbal, *numbers: str) -> str:
    """A Messaging Service whose pool holds `numbers`; its SID."""
    with server.http() as http:
        created = http.post("/v1/Services", data={"FriendlyName": "Budget"})
        assert created.status_code == 201, created.text
        sid = str(created.json()["sid"])
        listed = http.get(f"/2010-04-01/Accounts/{server.account_sid}/IncomingPhoneNumbers.json")
        by_number = {n["phone_number"]: n["sid"] for n in listed.json()["incoming_phone_numbers"]}
        for number in numbers:
            added = http.post(
                f"/v1/Services/{sid}/PhoneNumbers", data={"PhoneNumberSid": by_number[number]}
            )
            assert added.status_code == 201, added.text
    return sid


@pytest.mark.parametrize("sender", ["From", "MessagingServiceSid"])
def test_a_message_costs_at_most_six_statements(
    make_verbal: Callable[..., LiveVerbal], receiver: WebhookReceiver, sender: str
) -> None:
    server = make_verbal(idle_poll_seconds=1.0)
    server.add_number("+15550001000")
    if sender == "From":
        sending = {"From": "+15550001000"}
    else:
        server.add_number("+15550001001")
        sending = {
            "MessagingServiceSid": service_sending_from(server, "+15550001000", "+15550001001")
        }
    counted = {"statements": 0, "commits": 0}
    lock = threading.Lock()

    def on_statement(*_: Any) -> None:
        with lock:
            counted["statements"] += 1

    def on_commit(*_: Any) -> None:
        with lock:
            counted["commits"] += 1

    engine = server.runtime.engine.sync_engine
    journal = server.runtime.journal.stats
    with server.http() as http:
        # One message first, so that caches and id blocks are warm like a running server's.
        http.post(
            f"/2010-04-01/Accounts/{server.account_sid}/Messages.json",
            data={"To": "+15550002000", "Body": "warm-up", **sending},
        )
        wait_until(lambda: server.runtime.messaging.backlog == 0, what="the warm-up to settle")
        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(engine, "commit", on_commit)
        before = (journal.statements, journal.transactions)

        def send(i: int) -> int:
            return http.post(
                f"/2010-04-01/Accounts/{server.account_sid}/Messages.json",
                data={
                    "To": f"+1555300{i:04d}",
                    **sending,
                    "Body": f"budget {i}",
                    "StatusCallback": receiver.url(),
                },
            ).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            assert set(pool.map(send, range(MESSAGES))) == {201}
        receiver.wait_for(
            lambda requests: (
                sum(r.params["MessageStatus"] == "delivered" for r in requests) == MESSAGES
            ),
            timeout=60,
        )
        wait_until(lambda: server.runtime.messaging.backlog == 0, what="callbacks to settle")
        server.call(flushed)
    # Each message went the way the parameter says.
    assert {r.params.get("MessagingServiceSid") for r in receiver.received()} == {
        sending.get("MessagingServiceSid")
    }
    event.remove(engine, "before_cursor_execute", on_statement)
    event.remove(engine, "commit", on_commit)

    journal_statements = journal.statements - before[0] + 2 * (journal.transactions - before[1])
    total = journal_statements + counted["statements"] + counted["commits"]
    per_message = total / MESSAGES
    assert per_message <= BUDGET, (
        f"{per_message:.2f} statements per message: journal {journal_statements}, "
        f"other {counted['statements']} and {counted['commits']} commits"
    )
