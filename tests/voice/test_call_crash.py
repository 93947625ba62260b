"""`verbal serve` killed with SIGKILL while calls are up: each call ends with one final state.

A call lives in the memory of the process that runs it, so a kill ends it; what must hold is
the record. The real command runs on a SQLite file with three calls: one answered and
talking, one still ringing, one already over. After `kill -9` and a restart on the same
file, the answered call is `completed` and the ringing one `failed` (both "server
restarted"), the finished one is as it was, and a final state once written is never
overwritten.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AppServer, wait_until
from tests.processes import VerbalProcess, run_cli

FROM = "+15550001000"
TALKING = "+15550002001"
RINGING = "+15550002002"
FINISHED = "+15550002003"


def calls(database: Path) -> dict[str, dict[str, Any]]:
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM calls").fetchall()
    return {row["to_number"]: dict(row) for row in rows}


def test_kill_9_with_calls_up_leaves_each_with_one_final_state(
    tmp_path: Path, app_server: AppServer, spawned: list[VerbalProcess]
) -> None:
    app_server.routes["/talk"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Say>Hold on</Say><Pause length="120"/></Response>',
    )
    app_server.routes["/bye"] = lambda hit: (200, "text/xml", "<Response><Hangup/></Response>")
    database = tmp_path / "verbal.db"
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        "VERBAL_LOG_LEVEL": "info",
    }
    first = VerbalProcess("first", env, tmp_path)
    spawned.append(first)
    first.wait_healthy()
    added = run_cli(env, tmp_path, "numbers", "add", FROM, "--account", account_sid, "--json")
    assert added.returncode == 0, added.stderr

    calls_path = f"/2010-04-01/Accounts/{account_sid}/Calls.json"
    with httpx.Client(base_url=first.base_url, auth=(account_sid, auth_token), timeout=30) as http:
        rule = {"pattern": RINGING, "outcome": "answer", "delay_seconds": 300, "channel": "voice"}
        assert http.post("/sandbox/rules", json=rule).status_code == 201
        for to, path in ((FINISHED, "/bye"), (TALKING, "/talk"), (RINGING, "/talk")):
            placed = http.post(
                calls_path,
                data={"To": to, "From": FROM, "Url": app_server.url(path), "Timeout": "600"},
            )
            assert placed.status_code == 201, placed.text

    def in_flight() -> dict[str, dict[str, Any]] | None:
        rows = calls(database)
        wanted = {FINISHED: "completed", TALKING: "in-progress", RINGING: "ringing"}
        return rows if {k: rows.get(k, {}).get("status") for k in wanted} == wanted else None

    before = wait_until(in_flight, timeout=30, what="one call over, one talking, one ringing")
    time.sleep(1.2)  # the talking call has lasted a second or more
    first.assert_alive()
    for pid in first.pids():
        os.kill(pid, signal.SIGKILL)
    assert first.process.wait(timeout=10) == -signal.SIGKILL
    # Dead: the rows still say what was in flight.
    assert calls(database)[TALKING]["status"] == "in-progress"

    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()
    after = calls(database)
    talking, ringing, finished = after[TALKING], after[RINGING], after[FINISHED]
    assert (talking["status"], talking["end_cause"]) == ("completed", "server restarted")
    assert talking["duration"] >= 1 and talking["ended_at"] is not None
    assert (ringing["status"], ringing["end_cause"]) == ("failed", "server restarted")
    assert ringing["duration"] == 0 and ringing["answered_at"] is None
    assert finished == before[FINISHED]  # over before the kill: untouched
    assert finished["end_cause"] == "app hung up"

    # The API reads the same, and a second restart changes nothing.
    with httpx.Client(base_url=second.base_url, auth=(account_sid, auth_token)) as http:
        listed = http.get(calls_path).json()["calls"]
    assert sorted(c["status"] for c in listed) == ["completed", "completed", "failed"]
    second.stop()
    third = VerbalProcess("third", env, tmp_path)
    spawned.append(third)
    third.wait_healthy()
    assert calls(database) == after
    third.stop()
