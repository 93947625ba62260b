"""Every status path, scripted through the sandbox network's HTTP API."""

from __future__ import annotations

import time

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until

FROM = "+15550001000"


def send(verbal: LiveVerbal, to: str, receiver: WebhookReceiver | None = None) -> str:
    data = {"To": to, "From": FROM, "Body": "scripted"}
    if receiver is not None:
        data["StatusCallback"] = receiver.url()
    with verbal.http() as http:
        response = http.post(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json", data=data)
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def fetch(verbal: LiveVerbal, sid: str) -> dict:
    with verbal.http() as http:
        return http.get(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages/{sid}.json").json()


def add_rule(verbal: LiveVerbal, **rule: object) -> dict:
    with verbal.http() as http:
        response = http.post("/sandbox/rules", json=rule)
    assert response.status_code == 201, response.text
    return response.json()


def inbox(verbal: LiveVerbal, handset: str) -> list[dict]:
    with verbal.http() as http:
        return http.get(f"/sandbox/handsets/{handset}/inbox").json()["messages"]


def final(verbal: LiveVerbal, sid: str) -> dict:
    return wait_until(
        lambda: (m := fetch(verbal, sid))["status"] in ("delivered", "undelivered", "failed") and m,
        what=f"{sid} to reach a final status",
    )


def test_undeliverable_reports_undelivered_with_error_code(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    add_rule(verbal, pattern="+1555000300*", outcome="undeliverable", error_code=30005)
    sid = send(verbal, "+15550003001", receiver)
    message = final(verbal, sid)
    assert (message["status"], message["error_code"]) == ("undelivered", 30005)
    assert message["error_message"] == "Unknown destination handset"
    requests = receiver.wait_for(lambda rs: len(rs) >= 3)
    assert [r.params["MessageStatus"] for r in requests] == ["queued", "sent", "undelivered"]
    assert requests[-1].params["ErrorCode"] == "30005"
    assert inbox(verbal, "+15550003001") == []


def test_fail_refuses_the_submit_and_fails_with_default_code(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    add_rule(verbal, pattern="+15550004000", outcome="fail")
    sid = send(verbal, "+15550004000", receiver)
    message = final(verbal, sid)
    assert (message["status"], message["error_code"]) == ("failed", 30008)
    assert message["date_sent"] is None
    requests = receiver.wait_for(lambda rs: len(rs) >= 2)
    assert [r.params["MessageStatus"] for r in requests] == ["queued", "failed"]
    assert requests[-1].params["ErrorCode"] == "30008"


def test_first_matching_rule_wins_and_rules_can_be_removed(verbal: LiveVerbal) -> None:
    specific = add_rule(verbal, pattern="+15550005000", outcome="fail", error_code=30007)
    add_rule(verbal, pattern="+1555000500*", outcome="undeliverable")
    with verbal.http() as http:
        rules = http.get("/sandbox/rules").json()["rules"]
    assert rules[0]["id"] == specific["id"]
    assert final(verbal, send(verbal, "+15550005000"))["error_code"] == 30007
    assert final(verbal, send(verbal, "+15550005001"))["status"] == "undelivered"
    with verbal.http() as http:
        assert http.delete(f"/sandbox/rules/{specific['id']}").status_code == 204
        assert http.delete(f"/sandbox/rules/{specific['id']}").status_code == 404
    assert final(verbal, send(verbal, "+15550005000"))["status"] == "undelivered"
    with verbal.http() as http:
        assert http.delete("/sandbox/rules").status_code == 204
        assert http.get("/sandbox/rules").json() == {"rules": []}
    assert final(verbal, send(verbal, "+15550005000"))["status"] == "delivered"


def test_delay_holds_the_receipt_and_the_inbox(verbal: LiveVerbal) -> None:
    add_rule(verbal, pattern="+15550006000", outcome="deliver", delay_seconds=1.5)
    started = time.monotonic()
    sid = send(verbal, "+15550006000")
    wait_until(lambda: fetch(verbal, sid)["status"] == "sent", what="sent")
    assert inbox(verbal, "+15550006000") == []
    final(verbal, sid)
    assert time.monotonic() - started >= 1.4
    assert [m["message_sid"] for m in inbox(verbal, "+15550006000")] == [sid]


def test_silent_network_leaves_the_message_sent(verbal: LiveVerbal) -> None:
    add_rule(verbal, pattern="+15550007000", outcome="silent")
    sid = send(verbal, "+15550007000")
    wait_until(lambda: fetch(verbal, sid)["status"] == "sent", what="sent")
    # A message sent after it gets its receipt; the silent one still has none.
    assert final(verbal, send(verbal, "+15550007001"))["status"] == "delivered"
    assert fetch(verbal, sid)["status"] == "sent"
    assert [m["message_sid"] for m in inbox(verbal, "+15550007000")] == [sid]


def test_throttling_and_timeouts_are_retried_until_the_network_recovers(
    verbal: LiveVerbal,
) -> None:
    throttle = add_rule(verbal, pattern="+15550008000", outcome="throttle")
    timeout = add_rule(verbal, pattern="+15550008001", outcome="timeout")
    throttled = send(verbal, "+15550008000")
    hung = send(verbal, "+15550008001")
    time.sleep(2.5)  # several submit attempts (base 0.1 s) and at least one 1 s timeout
    assert fetch(verbal, throttled)["status"] == "sending"
    assert fetch(verbal, hung)["status"] == "sending"
    with verbal.http() as http:
        http.delete(f"/sandbox/rules/{throttle['id']}")
        http.delete(f"/sandbox/rules/{timeout['id']}")
    assert final(verbal, throttled)["status"] == "delivered"
    assert final(verbal, hung)["status"] == "delivered"


def test_expired_validity_period_fails_the_message(verbal: LiveVerbal) -> None:
    add_rule(verbal, pattern="+15550009000", outcome="throttle")
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": "+15550009000", "From": FROM, "Body": "x", "ValidityPeriod": "1"},
        )
    message = final(verbal, response.json()["sid"])
    assert (message["status"], message["error_code"]) == ("failed", 30036)


def test_handset_reply_becomes_an_inbound_message(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        response = http.post(
            "/sandbox/handsets/+15550002000/messages", json={"to": FROM, "body": "STOP? no, hi!"}
        )
        assert response.status_code == 201, response.text
        sid = response.json()["message_sid"]
        listed = http.get(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json").json()
    [message] = [m for m in listed["messages"] if m["sid"] == sid]
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert (message["from"], message["to"], message["body"]) == (
        "+15550002000",
        FROM,
        "STOP? no, hi!",
    )


def test_sandbox_api_rejects_bad_input_readably(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        not_handset = http.get("/sandbox/handsets/+442079460000/inbox")
        assert (not_handset.status_code, not_handset.json()["code"]) == (400, 21211)
        unowned = http.post(
            "/sandbox/handsets/+15550002000/messages", json={"to": "+15550009999", "body": "hi"}
        )
        assert (unowned.status_code, unowned.json()["code"]) == (404, 21606)
        bad_rule = http.post("/sandbox/rules", json={"pattern": "*", "outcome": "explode"})
        assert bad_rule.status_code == 400 and "outcome" in bad_rule.json()["message"]
        not_json = http.post(
            "/sandbox/rules", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
    import httpx

    with httpx.Client(base_url=verbal.base_url) as anonymous:
        assert anonymous.get("/sandbox/rules").status_code == 401


def test_accounts_see_only_their_own_inboxes_and_rules(verbal: LiveVerbal) -> None:
    async def second_account(runtime):  # type: ignore[no-untyped-def]
        account = await runtime.directory.create_account("Other")
        await runtime.directory.add_number(account, "+15550001999")
        return account.sid, account.auth_token

    other_sid, other_token = verbal.call(second_account)
    add_rule(verbal, pattern="*", outcome="undeliverable")
    mine = send(verbal, "+15550002000")
    assert final(verbal, mine)["status"] == "undelivered"

    import httpx

    with httpx.Client(base_url=verbal.base_url, auth=(other_sid, other_token)) as other:
        assert other.get("/sandbox/rules").json() == {"rules": []}
        response = other.post(
            f"/2010-04-01/Accounts/{other_sid}/Messages.json",
            data={"To": "+15550002000", "From": "+15550001999", "Body": "theirs"},
        )
        theirs = response.json()["sid"]
        # My rule does not script their messages.
        wait_until(
            lambda: (
                other.get(f"/2010-04-01/Accounts/{other_sid}/Messages/{theirs}.json").json()[
                    "status"
                ]
                == "delivered"
            ),
            what="the other account's message delivered",
        )
        their_inbox = other.get("/sandbox/handsets/+15550002000/inbox").json()["messages"]
        assert [m["message_sid"] for m in their_inbox] == [theirs]
        # They cannot inject a handset text into my number, nor delete my rules.
        injected = other.post(
            "/sandbox/handsets/+15550002000/messages", json={"to": FROM, "body": "spoof"}
        )
        assert (injected.status_code, injected.json()["code"]) == (404, 21606)
        assert other.delete("/sandbox/rules").status_code == 204
    with verbal.http() as http:
        assert len(http.get("/sandbox/rules").json()["rules"]) == 1
        assert [m["message_sid"] for m in inbox(verbal, "+15550002000")] == []


def test_a_rule_pattern_cannot_stall_the_server(verbal: LiveVerbal) -> None:
    """A 15 KB pattern of "[a-" took fnmatch 5.6 s to compile on the event loop, stalling
    every tenant; patterns are now limited, and the longest allowed is matched at once."""
    import threading

    import httpx

    latencies: list[float] = []
    done = threading.Event()

    def watch_health() -> None:
        with httpx.Client(base_url=verbal.base_url, timeout=30) as http:
            while not done.is_set():
                started = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        with verbal.http() as http:
            refused = http.post(
                "/sandbox/rules", json={"pattern": "[a-" * 5_000, "outcome": "fail"}
            )
        assert refused.status_code == 400, refused.text
        assert {"code", "more_info"} <= refused.json().keys()
        assert "pattern" in refused.json()["message"]
        # 64 characters, the limit, and stars that a backtracking matcher would try in every
        # combination: seven zeros after +1555, in any places.
        longest = "+1555" + "*[!123456789]" * 4 + "*0*0*0*"
        assert len(longest) == 64
        add_rule(verbal, pattern=longest, outcome="undeliverable")
        matched = send(verbal, "+15550000000")
        unmatched = send(verbal, "+15550002000")
        assert final(verbal, matched)["status"] == "undelivered"
        assert final(verbal, unmatched)["status"] == "delivered"
    finally:
        done.set()
        watcher.join()
    assert latencies, "the health check never answered"
    latencies.sort()
    # The bound for a typical answer, and a generous one for the slowest on a busy
    # machine: the stall it reproduces lasted seconds.
    assert latencies[len(latencies) // 2] < 0.05, latencies[-5:]
    assert latencies[-1] < 1.0, latencies[-5:]
