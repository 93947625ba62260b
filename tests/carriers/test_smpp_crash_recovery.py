"""`verbal serve` with an SMPP carrier is killed with SIGKILL after answering a deliver_sm
whose content it had not used yet: a receipt not matched to its message, a part of a long
text not joined. The real command runs as a subprocess on a SQLite file, node-smpp is the
SMSC (`tests/peers/smsc.js`); after a restart on the same database the receipt still
delivers its message and the part still completes its text.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.carriers.conftest import Smscs
from tests.conftest import wait_until
from tests.peers.node import NodeSmsc
from tests.processes import VerbalProcess, run_cli

PASSWORD = "crash-pw"
NUMBER = "+15550001000"
HANDSET = "+447700900123"


class Server:
    """Runs of `verbal serve` on one database, with one account, one number and one carrier."""

    def __init__(self, tmp_path: Path, smsc: NodeSmsc, spawned: list[VerbalProcess]) -> None:
        self.tmp_path = tmp_path
        self.database = tmp_path / "verbal.db"
        self.spawned = spawned
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth = (self.account_sid, secrets.token_hex(16))
        carrier = {
            "name": "acme",
            "host": "127.0.0.1",
            "port": smsc.port,
            "system_id": "verbal",
            "password": PASSWORD,
            "prefixes": ["+44"],
            "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.5,
        }
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "VERBAL_DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
            "VERBAL_BOOTSTRAP_ACCOUNT_SID": self.account_sid,
            "VERBAL_BOOTSTRAP_AUTH_TOKEN": self.auth[1],
            "VERBAL_CARRIERS": json.dumps([carrier]),
            "VERBAL_SUBMIT_RETRY_BASE_SECONDS": "0.1",
            "VERBAL_SUBMIT_RETRY_MAX_SECONDS": "0.5",
        }

    def start(self, name: str) -> VerbalProcess:
        process = VerbalProcess(name, self.env, self.tmp_path)
        self.spawned.append(process)
        return process.wait_healthy()

    def add_number(self) -> None:
        added = run_cli(
            self.env, self.tmp_path, "numbers", "add", NUMBER, "--account", self.account_sid
        )
        assert added.returncode == 0, added.stderr

    def http(self, process: VerbalProcess) -> httpx.Client:
        return httpx.Client(base_url=process.base_url, auth=self.auth, timeout=30)

    def rows(self, table: str) -> int:
        with closing(sqlite3.connect(f"{self.database.as_uri()}?mode=ro", uri=True)) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def kill_9(process: VerbalProcess) -> None:
    """SIGKILL to the server and the pipeline process it forked."""
    for pid in process.pids():
        os.kill(pid, signal.SIGKILL)
    assert process.process.wait(timeout=10) == -signal.SIGKILL


@pytest.fixture
def smsc(smscs: Smscs) -> Iterator[NodeSmsc]:
    yield smscs.start(password=PASSWORD)


def message(http: httpx.Client, account_sid: str, sid: str) -> dict[str, Any]:
    answer = http.get(f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_receipt_answered_before_its_message_was_known_survives_a_kill_9(
    tmp_path: Path, smsc: NodeSmsc, spawned: list[VerbalProcess]
) -> None:
    # The receipt comes before the submit_sm_resp, which the SMSC holds back past the kill:
    # Verbal answers the receipt while no part has its id. After the restart the message
    # goes again; the SMSC sees a duplicate and answers with the first id and no second
    # receipt (dedupe), so only the receipt answered before the kill can deliver it.
    smsc.send("set", receipt_first=True, resp_delay_ms=600_000, dedupe=True)
    server = Server(tmp_path, smsc, spawned)
    first = server.start("first")
    server.add_number()
    with server.http(first) as http:
        sent = http.post(
            f"/2010-04-01/Accounts/{server.account_sid}/Messages.json",
            data={"To": HANDSET, "From": NUMBER, "Body": "crash after the receipt"},
        )
        assert sent.status_code == 201, sent.text
        sid = sent.json()["sid"]
        answered = smsc.wait_event("deliver_resp", 30, kind="receipt")
        assert answered["status"] == 0
        assert message(http, server.account_sid, sid)["status"] == "sending"
    kill_9(first)
    assert server.rows("smpp_waiting_receipts") == 1
    assert server.rows("smpp_parts") == 0  # its id was never recorded

    smsc.send("set", resp_delay_ms=0)
    second = server.start("second")
    with server.http(second) as http:
        delivered = wait_until(
            lambda: message(http, server.account_sid, sid)["status"] == "delivered",
            timeout=60,
            what=f"{sid} delivered\n{second.tail()}",
        )
        assert delivered
    assert (len(smsc.of("submit")), len(smsc.of("submit_repeated"))) == (1, 1)
    assert len(smsc.of("receipt")) == 1
    assert server.rows("smpp_waiting_receipts") == 0


@pytest.mark.slow
def test_a_part_of_a_long_text_answered_before_a_kill_9_still_joins_its_text(
    tmp_path: Path, smsc: NodeSmsc, spawned: list[VerbalProcess]
) -> None:
    server = Server(tmp_path, smsc, spawned)
    first = server.start("first")
    server.add_number()
    pieces = ["The first half of a long text, ", "and its second half."]

    def part(sequence: int) -> dict[str, Any]:
        smsc.send(
            "mo",
            tag=f"p{sequence}",
            source=HANDSET.removeprefix("+"),
            dest=NUMBER.removeprefix("+"),
            text=pieces[sequence - 1],
            udh=f"0500034202{sequence:02x}",
        )
        return smsc.wait_event("deliver_resp", 30, tag=f"p{sequence}")

    smsc.wait_event("bind", 30, status=0)
    assert part(1)["status"] == 0
    kill_9(first)
    smsc.wait_event("close", 30)  # the SMSC has seen the first run's bind go
    assert server.rows("smpp_inbound_parts") == 1

    second = server.start("second")
    smsc.wait_for(
        lambda events: len([e for e in events if e["event"] == "bind"]) == 2, 30, "a second bind"
    )
    assert part(2)["status"] == 0
    with server.http(second) as http:
        listed = http.get(
            f"/2010-04-01/Accounts/{server.account_sid}/Messages.json", params={"To": NUMBER}
        )
    assert listed.status_code == 200, listed.text
    bodies = [(m["direction"], m["body"]) for m in listed.json()["messages"]]
    assert bodies == [("inbound", "".join(pieces))]
    assert server.rows("smpp_inbound_parts") == 0
