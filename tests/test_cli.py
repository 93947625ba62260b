"""The `verbal` command as users run it: a subprocess on a SQLite file, output parsed as text.

Each command is run with `python -m verbal` (the same entry point as the `verbal` script),
so argument parsing, exit codes, stdout/stderr and the database all behave for real. The
last tests start `verbal serve` and check that it and the CLI share their work through the
database: what `verbal send` queued, the server sends.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import VerbalProcess, free_port
from verbal import __version__

NUMBER = "+15550001000"
HANDSET = "+15550002000"
SID = re.compile(r"^AC[0-9a-f]{32}$")
TOKEN = re.compile(r"^[0-9a-f]{32}$")
PLIVO_AUTH_ID = re.compile(r"^MA[A-Z0-9]{18}$")


@dataclass(frozen=True)
class Cli:
    """Runs `verbal ...` against one database."""

    env: dict[str, str]
    workdir: Path

    def run(self, *args: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *python, "-m", "verbal", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"verbal {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str) -> str:
        """Run a command that must fail readably; return its error message, unwrapped."""
        result = self.run(*args)
        assert result.returncode != 0, f"verbal {' '.join(args)} succeeded: {result.stdout}"
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stdout == "", result.stdout
        message = " ".join(result.stderr.split())  # the console wraps long lines
        assert message.startswith("error: "), message
        return message

    def create_account(self, name: str = "Account") -> dict[str, Any]:
        return dict(self.json("accounts", "create", "--name", name))

    def imports(self, *args: str) -> set[str]:
        """The modules `verbal ...` imports, as `python -X importtime` lists them."""
        result = self.run(*args, python=("-X", "importtime"))
        assert result.returncode == 0, f"verbal {' '.join(args)}: {result.stderr}"
        return {
            line.rsplit("|", 1)[1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'verbal.db'}",
        "VERBAL_IDLE_POLL_SECONDS": "0.2",
        "VERBAL_LOG_LEVEL": "warning",
    }
    return Cli(env, tmp_path)


# -- `verbal serve` as a subprocess ------------------------------------------------------------


@pytest.fixture
def serve(cli: Cli) -> Iterator[Any]:
    """Start `verbal serve` on the test's database; every server is stopped afterwards."""
    started: list[VerbalProcess] = []

    def start(name: str = "serve", command: str = "serve") -> VerbalProcess:
        server = VerbalProcess(f"{name}{len(started)}", cli.env, cli.workdir, command=command)
        started.append(server)
        return server.wait_healthy()

    yield start
    for server in started:
        server.stop()


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent CLI invocations side by side (each pays ~1 s of start-up)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- commands on the database ------------------------------------------------------------------


def test_accounts_create_and_list(cli: Cli) -> None:
    created = cli.create_account("Ops")
    assert SID.match(created["account_sid"]), created
    assert TOKEN.match(created["auth_token"]), created
    assert PLIVO_AUTH_ID.match(created["plivo_auth_id"]), created
    assert (created["friendly_name"], created["status"]) == ("Ops", "active")

    listed, with_tokens, table, second = together(
        lambda: cli.json("accounts", "list"),
        lambda: cli.json("accounts", "list", "--show-tokens"),
        lambda: cli.ok("accounts", "list"),
        lambda: cli.create_account("Other"),
    )
    public = {k: v for k, v in created.items() if k != "auth_token"}
    # The second account may or may not have been created before these lists ran.
    assert listed[0] == public and with_tokens[0] == created
    assert "auth_token" not in json.dumps(listed)
    assert created["account_sid"] in table and "Ops" in table
    assert created["auth_token"][:8] not in table

    assert second["account_sid"] != created["account_sid"]
    assert second["auth_token"] != created["auth_token"]
    assert second["plivo_auth_id"] != created["plivo_auth_id"]
    assert cli.json("accounts", "list", "--show-tokens") == [created, second]


def test_numbers_add_and_list(cli: Cli) -> None:
    owner = cli.create_account()
    added = cli.json("numbers", "add", NUMBER, "--account", owner["account_sid"])
    assert re.match(r"^PN[0-9a-f]{32}$", added["sid"]), added
    assert (added["number"], added["account_sid"]) == (NUMBER, owner["account_sid"])

    national, duplicate, not_a_number, unknown_account = together(
        # With one account, --account may be left out; numbers are stored in E.164.
        lambda: cli.json("numbers", "add", "(555) 000-1001", "--name", "Support"),
        lambda: cli.fails("numbers", "add", NUMBER, "--account", owner["account_sid"], "--json"),
        lambda: cli.fails("numbers", "add", "notanumber", "--account", owner["account_sid"]),
        lambda: cli.fails("numbers", "add", "+15550001002", "--account", "AC" + "0" * 32),
    )
    assert (national["number"], national["friendly_name"]) == ("+15550001001", "Support")
    assert national["account_sid"] == owner["account_sid"]
    assert "already belongs to an account" in duplicate and NUMBER in duplicate
    assert "'notanumber' is not a phone number" in not_a_number
    assert "no account AC" in unknown_account
    assert cli.json("numbers", "list") == [added, national]


def test_send_queues_and_refuses_readably(cli: Cli) -> None:
    owner = cli.create_account()
    cli.ok("numbers", "add", NUMBER)
    ucs2, named = ("--body", "✓" * 71), ("--account", owner["account_sid"])
    queued, unicode, text, not_owned, unreachable = together(
        lambda: cli.json("send", "--to", HANDSET, "--from", NUMBER, "--body", "hi"),
        lambda: cli.json("send", "--to", "(555) 000-2000", "--from", NUMBER, *ucs2, *named),
        lambda: cli.ok("send", "--to", HANDSET, "--from", NUMBER, "--body", "a" * 161),
        lambda: cli.fails("send", "--to", HANDSET, "--from", "+15550009999", "--body", "hi"),
        lambda: cli.fails("send", "--to", "+442079460000", "--from", NUMBER, "--body", "hi"),
    )
    assert re.match(r"^SM[0-9a-f]{32}$", queued["sid"]), queued
    assert queued["status"] == "queued"
    assert (queued["to"], queued["from"]) == (HANDSET, NUMBER)
    assert (queued["num_segments"], queued["encoding"]) == (1, "GSM-7")
    assert (unicode["to"], unicode["num_segments"], unicode["encoding"]) == (HANDSET, 2, "UCS-2")
    assert "queued SM" in text and "2 segment(s), GSM-7" in text
    assert "+15550009999 is not a valid, SMS-capable inbound phone number" in not_owned
    assert "+442079460000 is not reachable by any carrier" in unreachable


def test_optouts_add_list_remove_and_send_refused_meanwhile(cli: Cli) -> None:
    owner = cli.create_account()
    cli.ok("numbers", "add", NUMBER)
    added = cli.ok("optouts", "add", NUMBER, "(555) 000-2000")
    assert f"{HANDSET} opted out of texts from {NUMBER}" in added
    [entry] = cli.json("optouts", "list")
    assert (entry["account_sid"], entry["number"], entry["recipient"]) == (
        owner["account_sid"],
        NUMBER,
        HANDSET,
    )
    assert cli.json("optouts", "list", "--number", "+15550001001") == []
    refused, unknown = together(
        lambda: cli.fails("send", "--to", HANDSET, "--from", NUMBER, "--body", "hi"),
        lambda: cli.fails("optouts", "add", "+15550009999", HANDSET),
    )
    assert "Attempt to send to unsubscribed recipient" in refused and HANDSET in refused
    assert "+15550009999 is not a number of any account" in unknown

    cli.ok("optouts", "remove", NUMBER, HANDSET)
    assert cli.json("optouts", "list") == []
    assert cli.json("send", "--to", HANDSET, "--from", NUMBER, "--body", "hi")["status"] == "queued"


async def service_holding(database_url: str, number: str) -> str:
    """A Messaging Service of the number's account, with the number in its pool (no CLI
    command makes one: the API does); its SID."""
    from verbal.store import create_engine, session_factory
    from verbal.store.directory import Directory
    from verbal.store.services import Services

    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        row = await Directory(sessions).number(number)
        assert row is not None
        services = Services(sessions)
        service = await services.create(row.account_id, "CLI", {})
        await services.add_number(service, row)
        return service.sid
    finally:
        await engine.dispose()


def test_optouts_of_a_number_in_a_messaging_service_are_the_services(cli: Cli) -> None:
    cli.create_account()
    cli.ok("numbers", "add", NUMBER)
    service_sid = asyncio.run(service_holding(cli.env["VERBAL_DATABASE_URL"], NUMBER))

    added = cli.ok("optouts", "add", NUMBER, HANDSET)
    assert f"{HANDSET} opted out of texts from {service_sid}" in added
    [entry] = cli.json("optouts", "list", "--number", service_sid)
    assert (entry["number"], entry["recipient"]) == (service_sid, HANDSET)
    refused = cli.fails("send", "--to", HANDSET, "--from", NUMBER, "--body", "hi")
    assert f"opted out of messages from the Messaging Service {service_sid}" in refused
    # Lifted by the service's SID; an SID of no service is refused in words.
    assert f"may get texts from {service_sid} again" in cli.ok(
        "optouts", "remove", service_sid, HANDSET
    )
    assert cli.json("optouts", "list") == []
    unknown = cli.fails("optouts", "add", "MG" + "0" * 32, HANDSET)
    assert f"MG{'0' * 32} is not a Messaging Service of any account" in unknown


def test_commands_on_a_new_database(cli: Cli) -> None:
    # Side by side on a file that does not exist yet: each creates the schema or waits.
    version, carriers, carriers_table, accounts, send, add = together(
        lambda: cli.ok("version"),
        lambda: cli.json("carriers", "list"),
        lambda: cli.ok("carriers", "list"),
        lambda: cli.json("accounts", "list"),
        lambda: cli.fails("send", "--to", HANDSET, "--from", NUMBER, "--body", "x"),
        lambda: cli.fails("numbers", "add", NUMBER),
    )
    assert version.strip() == __version__
    assert carriers == [
        {"name": "sandbox", "kind": "sandbox", "reaches": ["+1555"], "rate_per_second": None}
    ]
    assert "sandbox" in carriers_table and "+1555" in carriers_table
    assert accounts == []
    assert "0 accounts exist; name one with --account" in send
    assert "0 accounts exist; name one with --account" in add


def test_commands_import_only_what_they_use(cli: Cli) -> None:
    # The web stack, the pipeline and the database layers take seconds to import: `version`
    # loads none of them, and the commands on the database only the database layers.
    server = {"fastapi", "uvicorn", "aiohttp", "verbal.api", "verbal.runtime"}
    assert not cli.imports("version") & {*server, "sqlalchemy", "pydantic_settings", "rich"}
    assert not cli.imports("accounts", "list") & server


# -- the CLI and a running server --------------------------------------------------------------


def test_serve_shows_the_first_accounts_credentials_once(cli: Cli, serve: Any) -> None:
    first = serve("first")
    accounts = cli.json("accounts", "list", "--show-tokens")
    assert len(accounts) == 1, accounts
    shown = first.stdout()
    assert "Account SID" in shown, first.tail()
    assert accounts[0]["account_sid"] in shown and accounts[0]["auth_token"] in shown
    assert accounts[0]["plivo_auth_id"] in shown
    assert f"Verbal {__version__}" in shown and first.base_url in shown
    assert first.stop() == 0, first.tail()

    second = serve("second")
    assert second.base_url in second.stdout(), second.tail()
    assert "Account SID" not in second.stdout()
    assert accounts[0]["auth_token"] not in second.stdout()
    assert cli.json("accounts", "list", "--show-tokens") == accounts


def test_server_sends_what_the_cli_queued(cli: Cli, serve: Any) -> None:
    owner = cli.create_account()
    cli.ok("numbers", "add", NUMBER)
    before = cli.json("send", "--to", HANDSET, "--from", NUMBER, "--body", "queued offline")

    server = serve()
    assert "Account SID" not in server.stdout(), "credentials shown though an account exists"
    auth = (owner["account_sid"], owner["auth_token"])
    path = f"/2010-04-01/Accounts/{owner['account_sid']}/Messages.json"
    with httpx.Client(base_url=server.base_url, auth=auth, timeout=10) as http:

        def statuses() -> dict[str, str]:
            response = http.get(path)
            assert response.status_code == 200, response.text
            return {m["sid"]: m["status"] for m in response.json()["messages"]}

        wait_for(lambda: statuses() == {before["sid"]: "delivered"}, 30, "the queued message")

        # The CLI keeps working beside the running server, which picks up what it queues.
        during = cli.json("send", "--to", HANDSET, "--from", NUMBER, "--body", "queued live")
        expected = {before["sid"]: "delivered", during["sid"]: "delivered"}
        wait_for(lambda: statuses() == expected, 30, "the message queued while serving")

        inbox = http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
        assert [(m["message_sid"], m["body"]) for m in inbox] == [
            (during["sid"], "queued live"),
            (before["sid"], "queued offline"),
        ]
        fetched = http.get(f"{path[: -len('.json')]}/{before['sid']}.json").json()
        assert (fetched["from"], fetched["to"], fetched["body"]) == (
            NUMBER,
            HANDSET,
            "queued offline",
        )


def test_a_second_server_on_one_sqlite_file_is_refused(cli: Cli, serve: Any) -> None:
    running = serve()
    port = str(free_port())
    refused = cli.run("serve", "--host", "127.0.0.1", "--port", port)
    assert refused.returncode != 0, refused.stdout
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "already serving" in " ".join(refused.stderr.split())
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{running.base_url}/healthz").status_code == 200
        with pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/healthz")


def test_a_file_that_is_not_a_database_stops_serve_with_a_readable_error(cli: Cli) -> None:
    # The schema is migrated by a short-lived child process; its failure reaches the user.
    (cli.workdir / "verbal.db").write_bytes(b"not a database, " * 512)
    refused = cli.run("serve", "--host", "127.0.0.1", "--port", str(free_port()))
    assert refused.returncode == 1, refused.stdout
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "file is not a database" in refused.stderr


# -- regressions: bugs these tests found -------------------------------------------------------


def test_tables_print_whole_credentials(cli: Cli) -> None:
    # Piped output used to be cut to 80 columns: 'AC0123456789abcde…' and half a token.
    owner = cli.create_account()
    number = cli.json("numbers", "add", NUMBER)
    accounts, numbers = together(
        lambda: cli.ok("accounts", "list", "--show-tokens"),
        lambda: cli.ok("numbers", "list"),
    )
    assert owner["account_sid"] in accounts and owner["auth_token"] in accounts
    assert owner["plivo_auth_id"] in accounts
    assert owner["account_sid"] in numbers and number["sid"] in numbers


def test_sigterm_hands_back_messages_in_flight(cli: Cli, serve: Any) -> None:
    account_sid, auth_token = "AC" + "5" * 32, "6" * 32
    cli.env.update(
        VERBAL_BOOTSTRAP_ACCOUNT_SID=account_sid,
        VERBAL_BOOTSTRAP_AUTH_TOKEN=auth_token,
        VERBAL_SUBMIT_TIMEOUT_SECONDS="5",
        VERBAL_SUBMIT_RETRY_BASE_SECONDS="60",
    )
    server = serve()
    cli.ok("numbers", "add", NUMBER)
    with httpx.Client(base_url=server.base_url, auth=(account_sid, auth_token), timeout=10) as http:
        # The sandbox never answers this submit: the message stays held until it times out.
        rule = http.post("/sandbox/rules", json={"pattern": "+1555*", "outcome": "timeout"})
        assert rule.status_code == 201, rule.text
        sent = http.post(
            f"/2010-04-01/Accounts/{account_sid}/Messages.json",
            data={"To": HANDSET, "From": NUMBER, "Body": "stuck"},
        )
        assert sent.status_code == 201, sent.text
    database = cli.workdir / "verbal.db"

    def held() -> list[Any]:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
            return db.execute("SELECT status, lease_owner, work_at FROM messages").fetchall()

    wait_for(
        lambda: held() and held()[0][0] == "sending" and held()[0][1] is not None,
        10,
        "the submit to be under way",
    )
    # Graceful: the server waits for the submit to time out, then lets go of the message,
    # leaving its work in the row (uvicorn used to re-raise SIGTERM and kill the process
    # before Runtime.stop() ran).
    assert server.stop() == 0, server.tail()
    [(status, owner, work_at)] = held()
    assert (status, owner) == ("sending", None), server.tail()
    assert work_at is not None, "the message's work was not handed back"


def test_demo_answers_a_handset_with_its_sample_app(cli: Cli, serve: Any) -> None:
    server = serve("demo", command="demo")
    stdout = wait_for(lambda: "Try it" in server.stdout() and server.stdout(), 10, "demo help")
    sid = re.search(r"AC[0-9a-f]{32}", stdout).group(0)  # type: ignore[union-attr]
    token = re.search(r"Auth token\W+([0-9a-f]{32})", stdout).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=server.base_url, auth=(sid, token), timeout=10) as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": NUMBER, "body": "ping"}
        )
        assert sent.status_code == 201, sent.text

        def reply() -> Any:
            inbox = http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
            return [m for m in inbox if m["body"] == "You said: ping"]

        [message] = wait_for(reply, 15, "the sample app's reply")
    assert message["from"] == NUMBER


def test_apps_create_and_attach(cli: Cli) -> None:
    cli.create_account()
    cli.ok("numbers", "add", NUMBER)
    app = cli.json(
        "apps",
        "create",
        "--sms-url",
        "http://127.0.0.1:9/sms",
        "--dialect",
        "twiml",
        "--name",
        "Support bot",
    )
    assert re.match(r"^AP[0-9a-f]{32}$", app["sid"]) and app["dialect"] == "rcml"
    assert len(app["messaging_token"]) == 88 and app["messaging_token"] != app["voice_token"]
    assert cli.json("apps", "list") == [app]
    cli.ok("numbers", "attach", NUMBER, "--app", app["sid"])
    [number] = cli.json("numbers", "list")
    assert number["application_sid"] == app["sid"]
    assert "unknown dialect 'klingon'" in cli.fails(
        "apps", "create", "--sms-url", "http://x/", "--dialect", "klingon"
    )
    assert "no application AP" in cli.fails("numbers", "attach", NUMBER, "--app", "AP" + "0" * 32)
