"""Acceptance: `verbal serve` is killed with SIGKILL mid-flight and loses nothing.

The real command runs as a subprocess on a SQLite file. 1,000 messages are accepted over the
Twilio API while the sandbox holds every delivery receipt back for a moment and every message
owes status callbacks to a real HTTP receiver (the last few to an endpoint that fails until
the kill); then the process is killed with `kill -9` while submits, receipts and callbacks
are still pending, and started again on the same database. Every accepted message must end
in exactly one final state ("delivered"), with a complete, ordered timeline, its callbacks
delivered (at least once), and no work left behind: no message row still holding work
(`work_at`) or owing a callback (`callback_cursor` behind `callback_seq`), and no job.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WebhookReceiver
from tests.processes import VerbalProcess, run_cli

MESSAGES = 1000
FROM = "+15550001000"
RECEIPT_DELAY_SECONDS = 1.5
# The last few messages' callbacks go to an endpoint that answers 503 until the kill, so some
# callbacks are certainly pending (and being retried) when the process dies.
LATE = 10
FINAL_STATUSES = ("delivered", "undelivered", "failed", "canceled", "received")
TIMELINE = ["queued", "sending", "sent", "delivered"]
CALLBACK_ORDER = ["queued", "sent", "delivered"]
# Recovery takes 15-30 s on an idle 2-core machine and several times that on a busy one, so
# the wait after the restart only gives up when nothing has moved for STALL_SECONDS.
STALL_SECONDS = 60


def handset(i: int) -> str:
    return f"+15552{i:06d}"


# -- reading the database (read-only) ----------------------------------------------------------


def read_db(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


def snapshot(path: Path) -> dict[str, Any]:
    """What is in flight: message statuses, messages holding work or owing callbacks, the
    callbacks owed, messages leased by the process, receipts not reported yet."""
    return {
        "statuses": dict(read_db(path, "SELECT status, COUNT(*) FROM messages GROUP BY status")),
        "with_work": count(path, "messages WHERE work_at IS NOT NULL"),
        "owing_callbacks": count(path, "messages WHERE callback_cursor < callback_seq"),
        "callbacks_owed": int(
            read_db(path, "SELECT COALESCE(SUM(callback_seq - callback_cursor), 0) FROM messages")[
                0
            ][0]
        ),
        "leased": count(path, "messages WHERE lease_owner IS NOT NULL"),
        "receipts_pending": count(path, "sandbox_deliveries WHERE NOT receipt_reported"),
    }


def count(path: Path, sql: str, *params: Any) -> int:
    return int(read_db(path, f"SELECT COUNT(*) FROM {sql}", *params)[0][0])


def progress(path: Path) -> tuple[int, int, int, int]:
    """Messages not final, messages with work or callbacks left, jobs, receipts not
    reported: all zero once settled."""
    marks = ",".join("?" * len(FINAL_STATUSES))
    return (
        count(path, f"messages WHERE status NOT IN ({marks})", *FINAL_STATUSES),
        count(path, "messages WHERE work_at IS NOT NULL OR callback_cursor < callback_seq"),
        count(path, "jobs"),
        count(path, "sandbox_deliveries WHERE NOT receipt_reported"),
    )


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_mid_flight_loses_no_message(
    tmp_path: Path, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    started = time.monotonic()
    endpoint_up = threading.Event()
    receiver.respond = lambda path, _: 200 if path == "/status" or endpoint_up.is_set() else 503
    database = tmp_path / "verbal.db"
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        "VERBAL_IDLE_POLL_SECONDS": "0.2",
        "VERBAL_SUBMIT_RETRY_BASE_SECONDS": "0.1",
        "VERBAL_SUBMIT_RETRY_MAX_SECONDS": "0.5",
        "VERBAL_WEBHOOK_TIMEOUT_SECONDS": "5",
        "VERBAL_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
        "VERBAL_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        "VERBAL_WEBHOOK_MAX_ATTEMPTS": "1000",  # the 503s must not exhaust the retries
        "VERBAL_LOG_LEVEL": "info",
        # The job lease stays at its 60 s default on purpose: the jobs the crash leaves
        # leased must be freed by the restart itself, not by their leases running out.
    }

    # First run: it creates the bootstrap account; the CLI gives it a number meanwhile.
    first = VerbalProcess("first", env, tmp_path)
    spawned.append(first)
    first.wait_healthy()
    assert "Account SID" in first.stdout(), first.tail()
    added = run_cli(env, tmp_path, "numbers", "add", FROM, "--account", account_sid, "--json")
    assert added.returncode == 0, added.stderr

    auth = (account_sid, auth_token)
    messages_path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
    with httpx.Client(base_url=first.base_url, auth=auth, timeout=30) as http:
        rule = http.post(
            "/sandbox/rules",
            json={
                "pattern": "+1555*",
                "outcome": "deliver",
                "delay_seconds": RECEIPT_DELAY_SECONDS,
            },
        )
        assert rule.status_code == 201, rule.text

        def send(i: int) -> tuple[int, int, str]:
            response = http.post(
                messages_path,
                data={
                    "To": handset(i),
                    "From": FROM,
                    "Body": f"crash test {i}",
                    "StatusCallback": receiver.url("/status" if i < MESSAGES - LATE else "/late"),
                },
            )
            sid = response.json().get("sid", "") if response.status_code == 201 else ""
            return i, response.status_code, sid or response.text

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(send, range(MESSAGES)))
    sent_at = time.monotonic()

    refused = [r for r in results if r[1] != 201]
    assert not refused, f"{len(refused)} sends refused, e.g. {refused[:3]}\n{first.tail()}"
    accepted = {sid: handset(i) for i, _, sid in results}
    assert len(accepted) == MESSAGES, "the API answered the same SID twice"

    # Kill it mid-flight, then look at what it left behind: the run must really have been
    # interrupted, or this would silently become a test of a clean run.
    first.assert_alive()
    os.kill(first.pid, signal.SIGKILL)
    assert first.process.wait(timeout=10) == -signal.SIGKILL
    killed_at = time.monotonic()
    endpoint_up.set()
    at_kill = snapshot(database)
    unfinished = sum(n for s, n in at_kill["statuses"].items() if s not in FINAL_STATUSES)
    assert unfinished > 0, f"nothing was in flight when killed: {at_kill}"
    assert at_kill["owing_callbacks"] >= LATE, f"callbacks were not pending: {at_kill}"
    assert at_kill["receipts_pending"] > 0, f"no receipt was pending: {at_kill}"
    assert at_kill["leased"] > 0, f"no message was being worked on: {at_kill}"
    callbacks_at_kill = len(receiver.received())

    # Second run on the same database: it must finish everything the first one started.
    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()
    assert "Account SID" not in second.stdout(), "credentials shown again on restart"
    last, moved_at = progress(database), time.monotonic()
    while last != (0, 0, 0, 0):
        second.assert_alive()
        time.sleep(0.25)
        now = progress(database)
        if now != last:
            last, moved_at = now, time.monotonic()
        assert time.monotonic() - moved_at < STALL_SECONDS, (
            f"stuck for {STALL_SECONDS} s at {snapshot(database)}\n{second.tail()}"
        )
    second.assert_alive()
    settled_at = time.monotonic()

    context = f"at kill: {at_kill}\n{second.tail()}"
    recovery_log = second.stderr_path.read_text()
    assert "resuming" in recovery_log and "left in flight" in recovery_log, context
    assert "Traceback" not in recovery_log, context

    # Every accepted message exists exactly once, and nothing else was made up.
    rows = read_db(database, "SELECT id, sid, to_number, status, direction FROM messages")
    sids = Counter(sid for _, sid, _, _, _ in rows)
    assert set(sids) == set(accepted), context
    assert all(n == 1 for n in sids.values()), context
    assert all(to == accepted[sid] for _, sid, to, _, _ in rows), "a message changed recipient"
    assert all(d == "outbound-api" for *_, d in rows), context
    wrong = {sid: status for _, sid, _, status, _ in rows if status != "delivered"}
    assert not wrong, f"{len(wrong)} not delivered, e.g. {list(wrong.items())[:5]}\n{context}"

    # Each timeline is complete and ordered, with exactly one final event and no repeats.
    sid_of = {message_id: sid for message_id, sid, *_ in rows}
    timelines: dict[str, list[str]] = defaultdict(list)
    for message_id, status in read_db(
        database, "SELECT message_id, status FROM message_events ORDER BY id"
    ):
        timelines[sid_of[message_id]].append(status)
    bad = {sid: t for sid, t in timelines.items() if t != TIMELINE}
    assert set(timelines) == set(accepted), context
    assert not bad, f"{len(bad)} bad timelines, e.g. {list(bad.items())[:5]}\n{context}"
    for sid in accepted:
        assert sum(s in FINAL_STATUSES for s in timelines[sid]) == 1, (sid, timelines[sid])

    # The carrier got each message once and reported each receipt; the queue is empty.
    deliveries = read_db(
        database, "SELECT message_sid, receipt_reported, receipt_status FROM sandbox_deliveries"
    )
    assert sorted(sid for sid, _, _ in deliveries) == sorted(accepted), context
    assert all(reported and status == "delivered" for _, reported, status in deliveries)
    assert count(database, "jobs") == 0

    # Callbacks: every status reached the receiver with a 200, in order, at least once;
    # re-deliveries can only come from callbacks that were in flight at the kill.
    seen: dict[str, list[str]] = defaultdict(list)
    answered_503 = []
    for request in receiver.received():
        assert request.params["AccountSid"] == account_sid
        if request.status_returned == 200:
            seen[request.params["MessageSid"]].append(request.params["MessageStatus"])
        else:
            answered_503.append(request.params["MessageSid"])
    late = {sid for i, _, sid in results if i >= MESSAGES - LATE}
    assert set(answered_503) <= late, "a callback failed that should not have"
    assert set(seen) == set(accepted), f"callbacks missing for {set(accepted) - set(seen)}"
    for sid, statuses in seen.items():
        finals = {s for s in statuses if s in FINAL_STATUSES}
        assert finals == {"delivered"}, (sid, statuses)
        first_seen = list(dict.fromkeys(statuses))
        assert first_seen == CALLBACK_ORDER, (sid, statuses)
    duplicates = sum(len(s) - len(set(s)) for s in seen.values())
    # Only a callback the database still counted as owed can go out again.
    assert duplicates <= at_kill["callbacks_owed"], (duplicates, at_kill)
    delivered_attempts = read_db(
        database,
        "SELECT COUNT(DISTINCT message_id || event) FROM webhook_attempts WHERE delivered",
    )[0][0]
    assert delivered_attempts == MESSAGES * len(CALLBACK_ORDER), context

    # The API tells the same story.
    with httpx.Client(base_url=second.base_url, auth=auth, timeout=30) as http:
        listed = http.get(messages_path, params={"PageSize": 1000}).json()["messages"]
    assert {m["sid"] for m in listed} == set(accepted)
    assert {m["status"] for m in listed} == {"delivered"}

    print(
        f"\n{MESSAGES} accepted in {sent_at - started:.1f}s; killed with {at_kill}; "
        f"{callbacks_at_kill} callbacks before the kill ({len(answered_503)} answered 503), "
        f"{duplicates} re-delivered; settled {settled_at - killed_at:.1f}s after the kill; "
        f"{time.monotonic() - started:.1f}s in all"
    )


# -- killed inside a batched commit ------------------------------------------------------------

SUSTAINED = 600
MAX_STOPS = 200


def holds_write_lock(path: Path) -> bool:
    """Whether some connection holds the database's write lock: an uncommitted write
    transaction is open (our own attempt to take the lock fails at once)."""
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                return True
            raise
        db.execute("ROLLBACK")
        return False


@pytest.mark.slow
def test_kill_9_inside_a_batched_commit_loses_no_message(
    tmp_path: Path, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    """Under a steady load, the server (both its processes) is frozen (SIGSTOP) at random
    instants until one catches it holding SQLite's write lock, that is inside a transaction
    of a journal whose rows are not committed yet; it is then killed there. After a restart, every
    message the API accepted reaches exactly one final state with its whole timeline."""
    database = tmp_path / "verbal.db"
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    env = {
        **os.environ,
        "VERBAL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        "VERBAL_IDLE_POLL_SECONDS": "0.2",
        "VERBAL_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
        "VERBAL_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        "VERBAL_LOG_LEVEL": "warning",
    }
    server = VerbalProcess("first", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    added = run_cli(env, tmp_path, "numbers", "add", FROM, "--account", account_sid, "--json")
    assert added.returncode == 0, added.stderr

    accepted: dict[str, str] = {}
    stop_sending = threading.Event()

    def send_steadily() -> None:
        with httpx.Client(base_url=server.base_url, auth=(account_sid, auth_token)) as http:
            for i in range(SUSTAINED):
                if stop_sending.is_set():
                    return
                try:
                    response = http.post(
                        f"/2010-04-01/Accounts/{account_sid}/Messages.json",
                        data={
                            "To": handset(i),
                            "From": FROM,
                            "Body": f"commit test {i}",
                            "StatusCallback": receiver.url("/status"),
                        },
                        timeout=10,
                    )
                except httpx.HTTPError:
                    return  # the server was killed under this request: it was not accepted
                if response.status_code == 201:
                    accepted[response.json()["sid"]] = handset(i)

    senders = [threading.Thread(target=send_steadily) for _ in range(4)]
    for thread in senders:
        thread.start()
    time.sleep(1.0)  # the load is on
    caught = False
    # Both processes of the server (API and pipeline) are frozen and killed together.
    pids = server.pids()
    assert len(pids) == 2, "the server runs its API and its pipeline in two processes"
    for _ in range(MAX_STOPS):
        time.sleep(secrets.randbelow(20) / 1000)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if holds_write_lock(database):
            caught = True
            break
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    stop_sending.set()
    for thread in senders:
        thread.join(timeout=30)
    assert caught, f"no stop of {MAX_STOPS} caught a transaction open"
    assert accepted, "nothing was accepted before the kill"

    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()
    deadline = time.monotonic() + STALL_SECONDS
    while progress(database) != (0, 0, 0, 0):
        second.assert_alive()
        assert time.monotonic() < deadline, f"not settled: {snapshot(database)}\n{second.tail()}"
        time.sleep(0.25)

    rows = read_db(database, "SELECT id, sid, to_number, status FROM messages")
    statuses = {sid: status for _, sid, _, status in rows}
    # Everything the API accepted is there, delivered; nothing else was invented (a message
    # whose 201 was lost with the kill may exist too, and must be delivered like the rest).
    assert set(accepted) <= set(statuses)
    assert set(statuses.values()) == {"delivered"}, Counter(statuses.values())
    sid_of = {message_id: sid for message_id, sid, _, _ in rows}
    timelines: dict[str, list[str]] = defaultdict(list)
    for message_id, status in read_db(
        database, "SELECT message_id, status FROM message_events ORDER BY message_id, seq"
    ):
        timelines[sid_of[message_id]].append(status)
    bad = {sid: t for sid, t in timelines.items() if t != TIMELINE}
    assert not bad, f"{len(bad)} bad timelines, e.g. {list(bad.items())[:5]}"
    delivered = {
        request.params["MessageSid"]
        for request in receiver.received()
        if request.params.get("MessageStatus") == "delivered"
    }
    assert set(statuses) <= delivered, "a final callback is missing"
