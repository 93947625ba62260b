"""Status callbacks survive a failing receiver: retried, recorded, in order, once each."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until
from tests.processes import free_port
from verbal.store.models import WebhookAttempt

FROM = "+15550001000"
HANDSET = "+15550002000"


def send(verbal: LiveVerbal, receiver: WebhookReceiver, body: str) -> str:
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": HANDSET, "From": FROM, "Body": body, "StatusCallback": receiver.url()},
        )
    assert response.status_code == 201
    return str(response.json()["sid"])


def attempts(verbal: LiveVerbal) -> list[WebhookAttempt]:
    async def load(runtime) -> list[WebhookAttempt]:  # type: ignore[no-untyped-def]
        async with runtime.sessions() as session:
            return list(await session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)))

    return verbal.call(load)


def test_receiver_failing_for_a_while_gets_every_callback_once_in_order(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    healthy_at = time.monotonic() + 1.5
    receiver.respond = lambda path, params: 500 if time.monotonic() < healthy_at else 200
    sids = [send(verbal, receiver, f"message {i}") for i in range(5)]

    def all_delivered(requests: list) -> bool:
        ok = [r for r in requests if r.status_returned == 200]
        return len(ok) == 3 * len(sids)

    requests = receiver.wait_for(all_delivered, timeout=30)
    assert any(r.status_returned == 500 for r in requests), "the receiver never failed"
    rank = {"queued": 0, "sent": 1, "delivered": 2}
    for sid in sids:
        mine = [r for r in requests if r.params["MessageSid"] == sid]
        succeeded = [r.params["MessageStatus"] for r in mine if r.status_returned == 200]
        assert succeeded == ["queued", "sent", "delivered"], sid
        # Every attempt, failed or not, arrives in status order: no status overtakes one
        # that was still being retried.
        order = [rank[r.params["MessageStatus"]] for r in mine]
        assert order == sorted(order), (sid, [r.params["MessageStatus"] for r in mine])

    # A retry carries the idempotency token of its first attempt; each status its own.
    tokens: dict[tuple[str, str], set[str]] = {}
    for r in requests:
        key = (r.params["MessageSid"], r.params["MessageStatus"])
        tokens.setdefault(key, set()).add(r.headers["I-Twilio-Idempotency-Token"])
    assert all(len(seen) == 1 for seen in tokens.values()), tokens
    assert len({token for seen in tokens.values() for token in seen}) == 3 * len(sids)

    # Nothing more arrives once all were delivered: a message sent now gets its three
    # callbacks, and none of the first five another.
    last = send(verbal, receiver, "last")
    receiver.wait_for(
        lambda requests: (
            [r.params["MessageStatus"] for r in requests if r.params["MessageSid"] == last]
            == ["queued", "sent", "delivered"]
        ),
        timeout=30,
    )
    delivered = [r for r in receiver.received() if r.status_returned == 200]
    assert len([r for r in delivered if r.params["MessageSid"] in sids]) == 15

    # Each attempt is recorded once its answer is in: the last may still be on its way.
    recorded = wait_until(lambda: len(got := attempts(verbal)) == len(receiver.received()) and got)
    failed = [a for a in recorded if not a.delivered]
    assert failed and all(a.response_status == 500 and a.error == "HTTP 500" for a in failed)
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in recorded)
    assert {a.attempt for a in failed} >= {1, 2}


def test_a_dead_receiver_is_given_up_on_and_does_not_block_later_statuses(
    make_verbal: Callable[..., LiveVerbal], receiver: WebhookReceiver
) -> None:
    verbal = make_verbal(webhook_max_attempts=3)
    verbal.add_number(FROM)
    receiver.respond = lambda path, params: 503 if params.get("MessageStatus") == "queued" else 200
    sid = send(verbal, receiver, "hello")
    requests = receiver.wait_for(
        lambda rs: any(r.params["MessageStatus"] == "delivered" for r in rs), timeout=20
    )
    statuses = [r.params["MessageStatus"] for r in requests if r.params["MessageSid"] == sid]
    assert statuses == ["queued", "queued", "queued", "sent", "delivered"]


def test_unreachable_receiver_is_recorded_not_fatal(
    make_verbal: Callable[..., LiveVerbal],
) -> None:
    verbal = make_verbal(webhook_max_attempts=2)
    verbal.add_number(FROM)
    # Reserved for this process and bound by nobody: connections to it are refused.
    dead_url = f"http://127.0.0.1:{free_port()}/status"
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": HANDSET, "From": FROM, "Body": "x", "StatusCallback": dead_url},
        )
    sid = response.json()["sid"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(attempts(verbal)) < 6:
        time.sleep(0.1)
    recorded = attempts(verbal)
    assert len(recorded) == 6  # three statuses, two attempts each
    assert all(not a.delivered and a.response_status is None for a in recorded)
    assert all("Connect" in (a.error or "") for a in recorded)
    with verbal.http() as http:
        fetched = http.get(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages/{sid}.json")
    assert fetched.json()["status"] == "delivered"


def test_timeline_shows_every_transition_and_attempt(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    receiver.respond = lambda path, params: 500 if params.get("MessageStatus") == "sent" else 200
    sid = send(verbal, receiver, "trace me")
    receiver.wait_for(lambda rs: any(r.params["MessageStatus"] == "delivered" for r in rs))
    with verbal.http() as http:
        # The receiver hears the last callback a moment before Verbal records its attempt.
        timeline = wait_until(
            lambda: (
                (t := http.get(f"/verbal/v1/messages/{sid}/timeline").json())["callbacks"]
                and t["callbacks"][-1]["event"] == "status:delivered"
                and t
            ),
            what="the delivered callback recorded",
        )
        missing = http.get("/verbal/v1/messages/SMnope/timeline")
    assert missing.status_code == 404
    assert [e["status"] for e in timeline["events"]] == ["queued", "sending", "sent", "delivered"]
    assert timeline["carrier"] == "sandbox" and timeline["carrier_message_id"]
    callbacks = [(c["event"], c["response_status"], c["delivered"]) for c in timeline["callbacks"]]
    assert callbacks[0] == ("status:queued", 200, True)
    assert callbacks[-1] == ("status:delivered", 200, True)
    failed_sent = [c for c in timeline["callbacks"] if c["event"] == "status:sent"]
    assert len(failed_sent) == 8 and not any(c["delivered"] for c in failed_sent)
    assert [c["attempt"] for c in failed_sent] == list(range(1, 9))
