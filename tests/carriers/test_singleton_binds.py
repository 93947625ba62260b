"""A singleton carrier's binds are held by one worker at a time and taken over when it dies.

Real `verbal serve` processes (one API node, two workers) share a throw-away PostgreSQL
database; the carrier's SMSC is node-smpp on loopback. Only one worker ever binds; it is
killed with SIGKILL, messages queue up meanwhile, and the other worker takes the lease
over, binds and sends them, each once.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.carriers.conftest import Smscs
from tests.conftest import wait_until
from tests.processes import VerbalProcess, run_cli

PASSWORD = "lease-pw"
NUMBER = "+15550001000"
UK = "+447700900"
LEASE_SECONDS = 3.0


def lease_expires(database_url: str) -> float:
    async def read() -> float:
        connection = await asyncpg.connect(database_url)
        try:
            query = "SELECT expires FROM leases WHERE name = 'carrier:acme'"
            return float(await connection.fetchval(query))
        finally:
            await connection.close()

    return asyncio.run(read())


def binds_by_session(smsc_events: list[dict[str, object]]) -> set[object]:
    return {event["session"] for event in smsc_events if event.get("status") == 0}


def test_a_dead_holders_binds_are_taken_over_and_the_queue_goes_out(
    tmp_path: Path, postgres_url: str, smscs: Smscs, spawned: list[VerbalProcess]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    account_sid, auth_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    carrier = {
        "name": "acme",
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "verbal",
        "password": PASSWORD,
        "prefixes": ["+44"],
        "singleton": True,
        "reconnect_min_seconds": 0.05,
        "reconnect_max_seconds": 0.5,
    }
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": postgres_url,
        "VERBAL_DATABASE_POOL_SIZE": "4",
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        "VERBAL_CARRIERS": json.dumps([carrier]),
        "VERBAL_CARRIER_LEASE_SECONDS": str(LEASE_SECONDS),
        "VERBAL_SUBMIT_RETRY_BASE_SECONDS": "0.1",
        "VERBAL_SUBMIT_RETRY_MAX_SECONDS": "0.5",
        "VERBAL_LOG_LEVEL": "info",
    }
    api = VerbalProcess("api", env, tmp_path, args=["--role", "api"])
    spawned.append(api)
    api.wait_healthy()
    assert run_cli(env, tmp_path, "numbers", "add", NUMBER).returncode == 0
    workers = [VerbalProcess(f"w{n}", env, tmp_path, args=["--role", "worker"]) for n in (1, 2)]
    spawned.extend(workers)
    for worker in workers:
        worker.wait_healthy()

    # Exactly one worker binds, and stays the only one: watched until the holder has renewed
    # its lease a whole lease beyond the expiry of the one it first took (not for a fixed
    # time, which a slow machine could fill before the standby even looked).
    wait_until(lambda: smsc.of("bind"), what="a bind")
    first = lease_expires(postgres_url)
    wait_until(
        lambda: lease_expires(postgres_url) > first + 2 * LEASE_SECONDS,
        timeout=20 * LEASE_SECONDS,
        what="the holder's renewals",
    )
    binds = smsc.of("bind")
    assert len(binds_by_session(binds)) == 1, binds
    holder = next(w for w in workers if "holding carrier acme" in w.stderr_path.read_text())
    standby = next(w for w in workers if w is not holder)
    assert "holding carrier acme" not in standby.stderr_path.read_text()

    http = httpx.Client(base_url=api.base_url, auth=(account_sid, auth_token))
    messages = f"/2010-04-01/Accounts/{account_sid}/Messages"

    def send(tag: str, count: int) -> list[str]:
        sids = []
        for i in range(count):
            response = http.post(
                messages + ".json",
                data={"To": f"{UK}{i:03d}", "From": NUMBER, "Body": f"{tag} {i}"},
            )
            assert response.status_code == 201, response.text
            sids.append(response.json()["sid"])
        return sids

    def all_sent(sids: list[str]) -> bool:
        statuses = [http.get(f"{messages}/{sid}.json").json()["status"] for sid in sids]
        return all(status in ("sent", "delivered") for status in statuses)

    before = send("before", 5)
    wait_until(lambda: all_sent(before), what="the holder to send")

    os.kill(holder.pid, signal.SIGKILL)
    holder.process.wait(timeout=10)
    killed_at = time.monotonic()
    queued = send("while nobody holds it", 20)

    # The standby takes the lease once it runs out, binds, and sends the queue.
    wait_until(lambda: len(smsc.submits()) >= 25, timeout=10 * LEASE_SECONDS, what="takeover")
    took = time.monotonic() - killed_at
    assert "holding carrier acme" in standby.stderr_path.read_text(), standby.tail()
    texts = Counter(str(event["text"]) for event in smsc.submits())
    assert all(texts[f"while nobody holds it {i}"] == 1 for i in range(20)), texts
    assert all(texts[f"before {i}"] == 1 for i in range(5)), texts
    assert took < 6 * LEASE_SECONDS, took

    wait_until(lambda: all_sent(queued), timeout=30, what="every queued message sent")
    http.close()
