"""Acceptance: a session step killed at any boundary sends each reply once, and loses none.

The real `verbal serve` runs a Tropo app whose conversation takes two steps: the first
fetches `/start`, sends its `say` and the `continue` handler's `say`, and owes the request to
the handler's `next`; the second fetches `/next` and sends its `say`. The server's test hook
(`VERBAL_TEST_CRASH_AT`, verbal/engine/sessions.py) ends the process with os._exit, as a
kill -9 would, at one boundary of one step: before or after the app is requested, before or
after the step's batch commits. The server then starts again on the same database, without
the hook, and the conversation must finish with the handset holding each text exactly once,
recorded in the order the app sent them.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AppServer, wait_until
from tests.processes import VerbalProcess, run_cli

APP_NUMBER = "+15550001000"
HANDSET = "+15550002000"
REPLIES = ["one", "two", "three"]
# (boundary, which step): every boundary of both steps.
CASES = [
    (boundary, step)
    for step in (1, 2)
    for boundary in ("before-fetch", "after-fetch", "before-commit", "after-commit")
]


def tropo(*verbs: dict[str, Any]) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps({"tropo": list(verbs)})


def read_db(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize(("boundary", "step"), CASES)
def test_a_step_killed_at_a_boundary_sends_each_reply_once(
    tmp_path: Path,
    app_server: AppServer,
    spawned: list[VerbalProcess],
    boundary: str,
    step: int,
) -> None:
    app_server.routes["/start"] = lambda hit: tropo(
        {"say": {"value": "one"}},
        {"on": {"event": "continue", "say": {"value": "two"}, "next": "/next"}},
    )
    app_server.routes["/next"] = lambda hit: tropo({"say": {"value": "three"}})
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
        # The sandbox's handset API needs the pipeline in the API's process.
        "VERBAL_SQLITE_PROCESSES": "1",
    }
    env.pop("VERBAL_TEST_CRASH_AT", None)
    crashing = VerbalProcess(
        "crashing", {**env, "VERBAL_TEST_CRASH_AT": f"{boundary}:{step}"}, tmp_path
    )
    spawned.append(crashing)
    crashing.wait_healthy()  # it made the bootstrap account: the CLI can set up the app
    added = run_cli(env, tmp_path, "numbers", "add", APP_NUMBER, "--account", account_sid)
    assert added.returncode == 0, added.stderr
    created = run_cli(
        env,
        tmp_path,
        *("apps", "create", "--dialect", "tropo", "--sms-url", app_server.url("/start")),
        *("--name", "crash test", "--account", account_sid, "--json"),
    )
    assert created.returncode == 0, created.stderr
    application = json.loads(created.stdout)["sid"]
    attached = run_cli(env, tmp_path, "numbers", "attach", APP_NUMBER, "--app", application)
    assert attached.returncode == 0, attached.stderr
    with httpx.Client(base_url=crashing.base_url, auth=(account_sid, auth_token)) as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": APP_NUMBER, "body": "hi"}
        )
    assert sent.status_code == 201, sent.text
    # The hook fired: the process died at the boundary, with the kill's own exit status.
    assert crashing.process.wait(timeout=30) == 137, crashing.tail()
    assert f"exiting at {boundary}" in crashing.stderr_path.read_text()

    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()

    def settled() -> bool:
        # Positive end condition: the session ended, no job is left, and every reply is in
        # a final state; after that nothing more can be sent.
        sessions = read_db(database, "SELECT state FROM sessions")
        jobs = read_db(database, "SELECT COUNT(*) FROM jobs")[0][0]
        busy = read_db(
            database,
            "SELECT COUNT(*) FROM messages WHERE direction != 'inbound' "
            "AND (status NOT IN ('delivered', 'undelivered', 'failed') OR work_at IS NOT NULL)",
        )[0][0]
        return bool(sessions) and {s for (s,) in sessions} == {"ended"} and not jobs and not busy

    wait_until(settled, timeout=60, what="the conversation to finish")
    with httpx.Client(base_url=second.base_url, auth=(account_sid, auth_token)) as http:
        inbox = http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
    # Each reply exactly once. Their order on the handset is not promised across a crash
    # (nor by SMS): replies the dead process had in flight are submitted again on restart,
    # beside the ones it had not started, by the submitters at once.
    assert sorted(m["body"] for m in inbox) == sorted(REPLIES), second.tail()
    assert len(read_db(database, "SELECT id FROM sessions")) == 1  # the text started one
    replies = read_db(
        database, "SELECT body FROM messages WHERE direction = 'outbound-reply' ORDER BY id"
    )
    assert [body for (body,) in replies] == REPLIES
    # The app was asked for each document at least once (again only if the crash came
    # between its request and the commit recording the answer).
    assert app_server.hits_for("/start") and app_server.hits_for("/next")
