"""Acceptance: one API process and three workers on one PostgreSQL lose nothing to kill -9.

Real `verbal serve --role api|worker` processes share a throw-away PostgreSQL database.
10,000 messages go in through the Twilio API while two of the three workers are killed with
SIGKILL at random moments (the seed is printed, so a failure can be replayed). The surviving
worker takes over the messages they held and the receipts they owed; in the end every message
has exactly one final state, every status callback reached the receiver (duplicates only where
a killed worker still owed one, and each with the same idempotency token) and no work is
left: no message row holding work or owing a callback, and no job.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import WebhookReceiver
from tests.processes import VerbalProcess, run_cli

MESSAGES = 10_000
FROM = "+15550001000"
RECEIPT_DELAY_SECONDS = 1.0
FINAL_STATUSES = ("delivered", "undelivered", "failed", "canceled", "received")
TIMELINE = ["queued", "sending", "sent", "delivered"]
CALLBACKS = ["queued", "sent", "delivered"]
TOKEN = "I-Twilio-Idempotency-Token"
STALL_SECONDS = 60


def handset(i: int) -> str:
    return f"+15553{i:06d}"


class Database:
    """Read-only SQL against the test's PostgreSQL database, from synchronous test code."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        async def fetch() -> list[asyncpg.Record]:
            connection = await asyncpg.connect(self.url)
            try:
                return list(await connection.fetch(sql, *params))
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def count(self, sql: str, *params: Any) -> int:
        return int(self.rows(f"SELECT COUNT(*) FROM {sql}", *params)[0][0])

    def progress(self) -> tuple[int, int, int, int]:
        """Messages not final, messages with work or callbacks left, jobs left, receipts
        unreported: all zero once settled."""
        return (
            self.count("messages WHERE NOT (status = ANY($1::text[]))", list(FINAL_STATUSES)),
            self.count("messages WHERE work_at IS NOT NULL OR callback_cursor < callback_seq"),
            self.count("jobs"),
            self.count("sandbox_deliveries WHERE NOT receipt_reported"),
        )

    def leased_by(self, owner: str) -> dict[str, int]:
        """What a worker held: messages, and the status callbacks they still owed."""
        [row] = self.rows(
            "SELECT COUNT(*), COALESCE(SUM(callback_seq - callback_cursor), 0) FROM messages "
            "WHERE lease_owner = $1",
            owner,
        )
        return {"messages": int(row[0]), "callbacks": int(row[1])}


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    yield Database(postgres_url)


def environment(database: Database, account_sid: str, auth_token: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": database.url,
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        # A killed worker's jobs come back after this long; live workers renew nothing, so
        # it must outlast the slowest job (a callback's timeout).
        "VERBAL_JOB_LEASE_SECONDS": "10",
        "VERBAL_WEBHOOK_TIMEOUT_SECONDS": "5",
        "VERBAL_WEBHOOK_RETRY_BASE_SECONDS": "0.1",
        "VERBAL_WEBHOOK_RETRY_MAX_SECONDS": "1",
        "VERBAL_SUBMIT_RETRY_BASE_SECONDS": "0.1",
        "VERBAL_SUBMIT_RETRY_MAX_SECONDS": "1",
        # Workers must be woken by NOTIFY: a missed wake-up would show as a long stall.
        "VERBAL_NOTIFIED_POLL_SECONDS": "30",
        # Four processes share the server's connections with the test's own.
        "VERBAL_DATABASE_POOL_SIZE": "5",
        "VERBAL_LOG_LEVEL": "warning",
        "VERBAL_LOG_FORMAT": "json",
    }


def start_layout(
    env: dict[str, str], workdir: Path, spawned: list[VerbalProcess], workers: int
) -> tuple[VerbalProcess, list[VerbalProcess]]:
    api = VerbalProcess("api", env, workdir, args=["--role", "api"])
    spawned.append(api)
    api.wait_healthy()  # it has migrated the database and made the account by now
    added = run_cli(
        env, workdir, "numbers", "add", FROM, "--account", env["VERBAL_BOOTSTRAP_ACCOUNT_SID"]
    )
    assert added.returncode == 0, added.stderr
    nodes = []
    for n in range(workers):
        worker = VerbalProcess(f"worker{n}", env, workdir, args=["--role", "worker"])
        spawned.append(worker)
        nodes.append(worker)
    for worker in nodes:
        worker.wait_healthy()
        ready = httpx.get(f"{worker.base_url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["role"] == "worker", ready.text
    return api, nodes


def owner_of(process: VerbalProcess) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def test_workers_are_woken_by_notify_not_by_polling(
    tmp_path: Path, database: Database, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    account_sid, auth_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    env = environment(database, account_sid, auth_token)
    env["VERBAL_NOTIFIED_POLL_SECONDS"] = "300"
    api, _ = start_layout(env, tmp_path, spawned, workers=1)
    # The worker has gone idle on an empty queue; only a notification can wake it now.
    time.sleep(1.0)
    with httpx.Client(base_url=api.base_url, auth=(account_sid, auth_token)) as http:
        sent = time.monotonic()
        response = http.post(
            f"/2010-04-01/Accounts/{account_sid}/Messages.json",
            data={
                "To": handset(1),
                "From": FROM,
                "Body": "wake up",
                "StatusCallback": receiver.url(),
            },
        )
        assert response.status_code == 201, response.text
    receiver.wait_for(
        lambda requests: any(r.params["MessageStatus"] == "sent" for r in requests), timeout=10
    )
    assert time.monotonic() - sent < 10
    # An api node runs no workers: nothing is leased to it, and its readiness says so.
    ready = httpx.get(f"{api.base_url}/readyz", timeout=5).json()
    assert ready == {"status": "ready", "role": "api"}


@pytest.mark.slow
def test_ten_thousand_messages_survive_two_workers_killed(
    tmp_path: Path, database: Database, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    seed = int(os.environ.get("VERBAL_TEST_SEED", secrets.randbelow(2**32)))
    chance = random.Random(seed)
    started = time.monotonic()
    account_sid, auth_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    env = environment(database, account_sid, auth_token)
    api, workers = start_layout(env, tmp_path, spawned, workers=3)
    victims = workers[:2]
    survivor = workers[2]
    # Kill points: how many messages have been accepted when each victim dies.
    kill_at = sorted(chance.sample(range(MESSAGES // 5, MESSAGES * 9 // 10), 2))

    auth = (account_sid, auth_token)
    path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
    accepted: dict[str, str] = {}
    refused: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    kills: list[dict[str, Any]] = []

    with httpx.Client(base_url=api.base_url, auth=auth, timeout=30) as http:
        rule = http.post(
            "/sandbox/rules",
            json={
                "pattern": "+1555*",
                "outcome": "deliver",
                "delay_seconds": RECEIPT_DELAY_SECONDS,
            },
        )
        assert rule.status_code == 201, rule.text

        def send(i: int) -> None:
            response = http.post(
                path,
                data={
                    "To": handset(i),
                    "From": FROM,
                    "Body": f"scale {i}",
                    "StatusCallback": receiver.url(),
                },
            )
            with lock:
                if response.status_code == 201:
                    accepted[response.json()["sid"]] = handset(i)
                else:
                    refused.append((i, response.status_code, response.text[:200]))
                done = len(accepted) + len(refused)
                if len(kills) < len(victims) and done >= kill_at[len(kills)]:
                    victim = victims[len(kills)]
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.process.wait(timeout=10)
                    kills.append(
                        {
                            "at": done,
                            "name": victim.name,
                            "leased": database.leased_by(owner_of(victim)),
                        }
                    )

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(send, range(MESSAGES)))
    sent_at = time.monotonic()
    assert not refused, f"{len(refused)} refused, e.g. {refused[:3]}"
    assert len(accepted) == MESSAGES
    assert [k["name"] for k in kills] == [v.name for v in victims], kills
    assert all(v.process.returncode == -signal.SIGKILL for v in victims)
    assert any(k["leased"]["messages"] for k in kills), f"no victim held work: {kills}"

    # The survivor finishes everything, including what the victims held.
    last, moved_at = database.progress(), time.monotonic()
    while last != (0, 0, 0, 0):
        survivor.assert_alive()
        api.assert_alive()
        time.sleep(0.5)
        now = database.progress()
        if now != last:
            last, moved_at = now, time.monotonic()
        assert time.monotonic() - moved_at < STALL_SECONDS, (
            f"stuck at {now} (not final, work, jobs, receipts); seed {seed}\n{survivor.tail()}"
        )
    settled_at = time.monotonic()
    context = f"seed {seed}, kills {kills}\n{survivor.tail()}"

    # Every accepted message exists once, delivered, with one complete timeline.
    rows = database.rows("SELECT id, sid, to_number, status FROM messages")
    assert sorted(r["sid"] for r in rows) == sorted(accepted), context
    assert all(accepted[r["sid"]] == r["to_number"] for r in rows)
    not_delivered = [(r["sid"], r["status"]) for r in rows if r["status"] != "delivered"]
    assert not not_delivered, f"{len(not_delivered)} not delivered: {not_delivered[:5]}\n{context}"
    sid_of = {r["id"]: r["sid"] for r in rows}
    timelines: dict[str, list[str]] = defaultdict(list)
    for event in database.rows(
        "SELECT message_id, status FROM message_events ORDER BY message_id, seq"
    ):
        timelines[sid_of[event["message_id"]]].append(event["status"])
    bad = {sid: t for sid, t in timelines.items() if t != TIMELINE}
    assert not bad and len(timelines) == MESSAGES, f"bad timelines: {list(bad.items())[:5]}"

    # The carrier took each message once and reported each receipt.
    deliveries = database.rows("SELECT message_sid, receipt_reported FROM sandbox_deliveries")
    assert sorted(d["message_sid"] for d in deliveries) == sorted(accepted), context
    assert all(d["receipt_reported"] for d in deliveries)
    assert database.count("jobs") == 0

    # Callbacks: each status of each message arrived; a repeat only where a victim had a
    # callback in flight, and then with the token of the first delivery.
    by_token: dict[str, tuple[str, str]] = {}
    arrivals = truncated = 0
    for request in receiver.received():
        assert request.status_returned == 200
        if "MessageStatus" not in request.params:
            truncated += 1  # a victim died while writing this request's body
            continue
        key = (request.params["MessageSid"], request.params["MessageStatus"])
        token = request.headers[TOKEN]
        assert by_token.setdefault(token, key) == key, "one token used for two events"
        arrivals += 1
    statuses: dict[str, list[str]] = defaultdict(list)
    for sid, status in by_token.values():
        statuses[sid].append(status)
    assert set(statuses) == set(accepted), (
        f"callbacks missing for {len(set(accepted) - set(statuses))}"
    )
    wrong = {sid: s for sid, s in statuses.items() if sorted(s, key=CALLBACKS.index) != CALLBACKS}
    assert not wrong, f"{len(wrong)} messages with wrong callbacks: {list(wrong.items())[:5]}"
    repeats = arrivals - len(by_token)
    # Only a callback the database still counted as owed by a victim can go out twice.
    in_flight = sum(k["leased"]["callbacks"] for k in kills)
    assert repeats + truncated <= in_flight, (repeats, truncated, kills)

    # The survivor's metrics show the work it did.
    metrics = httpx.get(f"{survivor.base_url}/metrics", timeout=10).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert samples[("verbal_callbacks_total", (("outcome", "delivered"),))] > 0
    # The queue is empty (as its table is): nothing due, no kind with jobs.
    assert samples[("verbal_queue_due_jobs", ())] == 0
    assert [key for key, value in samples.items() if key[0] == "verbal_queue_jobs" and value] == []

    print(
        f"\nseed {seed}: {MESSAGES} accepted in {sent_at - started:.1f}s; kills {kills}; "
        f"settled {settled_at - sent_at:.1f}s after the last send; {repeats} callbacks "
        f"re-delivered; {time.monotonic() - started:.1f}s in all"
    )
