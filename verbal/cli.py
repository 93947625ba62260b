"""The `verbal` command.

`serve` runs everything in one process; the other commands work on the same database
directly, so they also work while a server runs (it picks up what they queue).

Each command imports what it uses when it runs, and nothing else is imported at module
level: the web stack, the pipeline and the database layers take about 1.6 s of CPU to import
on a 2-core Xeon, which `verbal version` and `--help` should not pay, and the database
commands skip the web stack and the pipeline (`send` aside, which needs the pipeline to
accept a message).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from verbal import __version__

if TYPE_CHECKING:
    import uvicorn
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from verbal.config import Settings
    from verbal.processes import PipelineProcess
    from verbal.runtime import Runtime
    from verbal.store.directory import Directory
    from verbal.store.models import Account, Application, Message, PhoneNumber

app = typer.Typer(help="Verbal: programmable messaging on your own carriers.", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts and their credentials.", no_args_is_help=True)
numbers_app = typer.Typer(help="Manage the phone numbers accounts own.", no_args_is_help=True)
carriers_app = typer.Typer(help="Show the carriers messages leave by.", no_args_is_help=True)
messages_app = typer.Typer(help="Look at messages and their timelines.", no_args_is_help=True)
apps_app = typer.Typer(help="Manage applications (the URLs apps answer on).", no_args_is_help=True)
optouts_app = typer.Typer(
    help="Manage who opted out of texts from a number (STOP, START).", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(numbers_app, name="numbers")
app.add_typer(carriers_app, name="carriers")
app.add_typer(messages_app, name="messages")
app.add_typer(apps_app, name="apps")
app.add_typer(optouts_app, name="optouts")
app.add_typer(db_app, name="db")

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="VERBAL_DATABASE_URL", help="SQLAlchemy database URL."),
]


def main() -> None:
    app()


@functools.cache
def _out() -> Console:
    from rich.console import Console

    # Piped output gets no terminal width; a wide console keeps SIDs and tokens whole in tables.
    # No emoji codes: a name like "ops:fire:" prints as written (and rich's emoji table, 1 MiB,
    # stays unloaded).
    return Console(width=None if sys.stdout.isatty() else 240, emoji=False)


@functools.cache
def _err() -> Console:
    from rich.console import Console

    return Console(stderr=True, emoji=False)


def _table(*headers: str, title: str | None = None, show_header: bool = True) -> Table:
    from rich.table import Table

    return Table(*headers, title=title, show_header=show_header)


def _settings(**overrides: Any) -> Settings:
    from verbal.config import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio

    return asyncio.run(coro())


def _run_server(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Like `_run`, on uvloop (a dependency through uvicorn[standard]) where it is installed:
    the server spends a fifth of its CPU in the event loop and its transports, which uvloop
    does in C. The short commands keep the standard loop and skip the import."""
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop wheels
        return asyncio.run(coro())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro())


@dataclass(frozen=True)
class _Database:
    sessions: async_sessionmaker[AsyncSession]
    directory: Directory


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[_Database]:
    """The database, migrated, for the commands that only read and write its rows: no
    `Runtime`, whose pipeline, carriers and HTTP client would be imported and built for
    nothing."""
    from verbal.store import create_engine, migrate, session_factory
    from verbal.store.directory import Directory

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine, group_commit=settings.sqlite_group_commit)
        yield _Database(sessions, Directory(sessions))
    finally:
        await engine.dispose()


@asynccontextmanager
async def _offline(settings: Settings) -> AsyncIterator[Runtime]:
    """The runtime's services on a migrated database, without workers or carriers running."""
    from verbal.runtime import Runtime
    from verbal.store import migrate

    runtime = Runtime(settings)
    try:
        await migrate(runtime.engine)
        yield runtime
    finally:
        await runtime.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    _err().print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _e164(number: str) -> str:
    from verbal.messaging.addresses import InvalidNumber, to_e164

    try:
        return to_e164(number)
    except InvalidNumber as exc:
        raise _fail(str(exc)) from None


def _account_json(account: Account, *, secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account_sid": account.sid,
        "plivo_auth_id": account.plivo_auth_id,
        "friendly_name": account.friendly_name,
        "status": account.status,
    }
    if secrets:
        data["auth_token"] = account.auth_token
    return data


def _print_credentials(account: Account, title: str) -> None:
    table = _table(title=title, show_header=False)
    table.add_row("Account SID", account.sid)
    table.add_row("Auth token", account.auth_token)
    table.add_row("Plivo auth id", account.plivo_auth_id)
    _out().print(table)


# -- serve / demo ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    database_url: DatabaseOption = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all: API and workers in one process (default). api or worker: run them "
            "apart, any number of each, against one PostgreSQL database.",
        ),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="text (default) or json, one object per line.")
    ] = None,
) -> None:
    """Run the API, the workers and the sandbox network (all in one process by default)."""
    if role is not None and role not in ("all", "api", "worker"):
        raise _fail(f"unknown role {role!r}: use all, api or worker")
    if log_format is not None and log_format not in ("text", "json"):
        raise _fail(f"unknown log format {log_format!r}: use text or json")
    settings = _settings(
        host=host, port=port, database_url=database_url, role=role, log_format=log_format
    )
    _migrate_apart(settings)
    pipeline = None
    if settings.is_sqlite and settings.role == "all" and settings.sqlite_processes > 1:
        from verbal.processes import fork_pipeline

        pipeline = fork_pipeline(settings)
    _run_server(lambda: _serve(settings, on_started=_announce, pipeline=pipeline))


def _migrate_apart(settings: Settings) -> None:
    """The schema brought to the newest migration by a short-lived child (so the server
    never imports Alembic), or the reason it could not be."""
    from verbal.processes import MigrationFailed, migrate_apart

    try:
        migrate_apart(settings)
    except MigrationFailed as exc:
        raise _fail(str(exc)) from None


async def _announce(runtime: Runtime) -> None:
    if runtime.bootstrap_account is not None:
        _print_credentials(runtime.bootstrap_account, "First start: your account (shown once)")


OnStarted = Callable[["Runtime"], Coroutine[Any, Any, None]]


async def _serve(
    settings: Settings,
    on_started: OnStarted,
    *,
    demo: bool = False,
    pipeline: PipelineProcess | None = None,
) -> None:
    from verbal.api.app import create_app
    from verbal.api.serving import server_config
    from verbal.logs import configure as configure_logs
    from verbal.processes import PipelineFailed, freeze_heap
    from verbal.runtime import AlreadyServing, Runtime, SmscUnavailable, UnsupportedLayout

    configure_logs(settings.log_level, settings.log_format)
    # Both commands that serve migrate apart first (`_migrate_apart`).
    runtime = Runtime(settings, pipeline=pipeline, schema_ready=True)
    try:
        await runtime.start()
    except (AlreadyServing, UnsupportedLayout, SmscUnavailable, PipelineFailed) as exc:
        await runtime.close()
        raise _fail(str(exc)) from None
    try:
        await on_started(runtime)
        # Not through rich, which a server needs only for the first start's table.
        print(f"Verbal {__version__} starting on {settings.base_url}", flush=True)
        config = server_config(
            create_app(runtime, manage_runtime=False, demo=demo),
            settings,
            log_level=settings.log_level,
            # Our handlers (text or JSON) format uvicorn's records too.
            log_config=None,
            access_log=False,
        )
        server = _server(config)
        freeze_heap()  # what is built by now lives as long as the server
        if pipeline is not None:
            # The pipeline process ending by itself ends the server (verbal/processes.py).
            pipeline.on_lost = lambda: setattr(server, "should_exit", True)
        await server.serve()
    finally:
        await runtime.stop()
    if pipeline is not None and pipeline.lost:
        raise _fail("the pipeline process ended unexpectedly; see the log above")


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn, minus re-raising SIGINT/SIGTERM once it has stopped serving.

    uvicorn re-raises the signal after shutting down, which would kill the process before
    `Runtime.stop()` hands back the jobs in flight; here the signal only ends serving. (The
    class is made here because uvicorn is only imported by the commands that serve.)
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


DEMO_NUMBER = "+15550001000"
DEMO_HANDSET = "+15550002000"


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Serve with a ready demo account and number, and print what to try."""
    from verbal.store.directory import AlreadyExists

    settings = _settings(host=host, port=port, database_url=database_url)

    async def prepare(runtime: Runtime) -> None:
        # The demo account is whoever owns the demo number (a later run); on an empty
        # database, the first-start account; else a new one.
        owned = await runtime.directory.number(DEMO_NUMBER)
        account = None
        if owned is not None:
            account = next(
                (a for a in await runtime.directory.accounts() if a.id == owned.account_id), None
            )
        account = account or runtime.bootstrap_account
        if account is None:
            account = await runtime.directory.create_account("Demo")
        if not any(n.number == DEMO_NUMBER for n in await runtime.directory.numbers(account)):
            try:
                await runtime.directory.add_number(account, DEMO_NUMBER, "Demo number")
            except AlreadyExists:
                raise _fail(f"{DEMO_NUMBER} belongs to another account in this database") from None
        # The sample app: an echo bot in TwiML, served by this same server.
        echo_url = f"{settings.base_url}/demo/echo"
        apps = [a for a in await runtime.directory.applications(account) if a.sms_url == echo_url]
        application = (
            apps[0]
            if apps
            else await runtime.directory.create_application(
                account, "Demo echo bot", dialect="rcml", sms_url=echo_url
            )
        )
        await runtime.directory.attach(DEMO_NUMBER, application)
        _print_credentials(account, "Demo account")
        base = settings.base_url
        auth = f"{account.sid}:{account.auth_token}"
        _out().print(
            "\n[bold]Try it[/bold]\n"
            f"Send a text from the demo number to a sandbox handset:\n"
            f"  curl -u {auth} {base}/2010-04-01/Accounts/{account.sid}/Messages.json \\\n"
            f"       --data-urlencode To={DEMO_HANDSET} --data-urlencode From={DEMO_NUMBER} \\\n"
            f"       --data-urlencode 'Body=Hello from Verbal'\n"
            f"Read the handset's inbox:\n"
            f"  curl -u {auth} {base}/sandbox/handsets/{DEMO_HANDSET}/inbox\n"
            f"Reply from the handset: the sample app ({echo_url}) answers 'You said: …':\n"
            f"  curl -u {auth} {base}/sandbox/handsets/{DEMO_HANDSET}/messages \\\n"
            f'       -H \'Content-Type: application/json\' -d \'{{"to": "{DEMO_NUMBER}", '
            f'"body": "Hi back"}}\'\n'
            f"List messages:\n"
            f"  curl -u {auth} {base}/2010-04-01/Accounts/{account.sid}/Messages.json\n"
            f"API docs: {base}/docs\n"
        )

    _migrate_apart(settings)
    _run_server(lambda: _serve(settings, on_started=prepare, demo=True))


# -- send -----------------------------------------------------------------------------------


@app.command()
def send(
    to: Annotated[str, typer.Option("--to", help="Destination number.")],
    from_: Annotated[str, typer.Option("--from", help="One of the account's numbers.")],
    body: Annotated[str, typer.Option("--body", help="Message text.")] = "",
    media_url: Annotated[list[str] | None, typer.Option("--media-url")] = None,
    status_callback: Annotated[str | None, typer.Option("--status-callback")] = None,
    account_sid: Annotated[
        str | None, typer.Option("--account", help="Account SID; default: the only account.")
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """Queue a message; a running `verbal serve` on the same database sends it."""
    from verbal.messaging.errors import MessageRefused
    from verbal.messaging.service import SendRequest

    settings = _settings(database_url=database_url)

    async def go() -> dict[str, Any]:
        async with _offline(settings) as runtime:
            account = await _pick_account(runtime.directory, account_sid)
            request = SendRequest(
                to=to,
                from_=from_,
                body=body,
                media_urls=tuple(media_url or ()),
                status_callback=status_callback,
            )
            try:
                message = await runtime.messaging.send(account, request)
            except MessageRefused as refused:
                raise _fail(refused.detail) from None
            return {
                "sid": message.sid,
                "status": message.status,
                "to": message.to_number,
                "from": message.from_number,
                "num_segments": message.num_segments,
                "encoding": message.encoding,
            }

    result = _run(go)
    if as_json:
        print(json.dumps(result))
    else:
        _out().print(
            f"queued {result['sid']} ({result['num_segments']} segment(s), "
            f"{result['encoding']}) to {result['to']}"
        )


async def _pick_account(directory: Directory, sid: str | None) -> Account:
    if sid:
        account = await directory.account(sid)
        if account is None:
            raise _fail(f"no account {sid}")
        return account
    accounts = await directory.accounts()
    if len(accounts) != 1:
        raise _fail(f"{len(accounts)} accounts exist; name one with --account")
    return accounts[0]


# -- accounts -------------------------------------------------------------------------------


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise it by.")] = "Account",
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create an account and print its credentials."""
    settings = _settings(database_url=database_url)

    async def go() -> Account:
        async with _database(settings) as db:
            return await db.directory.create_account(name)

    account = _run(go)
    if as_json:
        print(json.dumps(_account_json(account, secrets=True)))
    else:
        _print_credentials(account, f"Account {name!r} created")


@accounts_app.command("list")
def accounts_list(
    show_tokens: Annotated[
        bool, typer.Option("--show-tokens", help="Include auth tokens.")
    ] = False,
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """List accounts (auth tokens only with --show-tokens)."""
    settings = _settings(database_url=database_url)

    async def go() -> list[Account]:
        async with _database(settings) as db:
            return await db.directory.accounts()

    accounts = _run(go)
    if as_json:
        print(json.dumps([_account_json(a, secrets=show_tokens) for a in accounts]))
        return
    table = _table("Account SID", "Plivo auth id", "Name", "Status")
    if show_tokens:
        table.add_column("Auth token")
    for a in accounts:
        row = [a.sid, a.plivo_auth_id, a.friendly_name, a.status]
        table.add_row(*row, *([a.auth_token] if show_tokens else []))
    _out().print(table)


# -- numbers --------------------------------------------------------------------------------


def _number_json(
    number: PhoneNumber, account_sid: str, application_sid: str | None = None
) -> dict[str, Any]:
    return {
        "sid": number.sid,
        "number": number.number,
        "account_sid": account_sid,
        "friendly_name": number.friendly_name,
        "application_sid": application_sid,
    }


@numbers_app.command("add")
def numbers_add(
    number: Annotated[str, typer.Argument(help="The number, E.164 preferred (+15550001000).")],
    account_sid: Annotated[
        str | None, typer.Option("--account", help="Account SID; default: the only account.")
    ] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """Give an account a number it can send from and receive on."""
    from verbal.store.directory import AlreadyExists

    settings = _settings(database_url=database_url)
    e164 = _e164(number)

    async def go() -> tuple[PhoneNumber, str]:
        async with _database(settings) as db:
            account = await _pick_account(db.directory, account_sid)
            try:
                return await db.directory.add_number(account, e164, name), account.sid
            except AlreadyExists as exc:
                raise _fail(str(exc)) from None

    row, owner = _run(go)
    if as_json:
        print(json.dumps(_number_json(row, owner)))
    else:
        _out().print(f"{row.number} added to {owner} ({row.sid})")


@numbers_app.command("list")
def numbers_list(as_json: JsonFlag = False, database_url: DatabaseOption = None) -> None:
    """List every number and the account that owns it."""
    settings = _settings(database_url=database_url)

    async def go() -> list[dict[str, Any]]:
        async with _database(settings) as db:
            owners = {a.id: a.sid for a in await db.directory.accounts()}
            apps = {a.id: a.sid for a in await db.directory.applications()}
            numbers = await db.directory.numbers()
            return [
                _number_json(n, owners[n.account_id], apps.get(n.application_id or 0))
                for n in numbers
            ]

    numbers = _run(go)
    if as_json:
        print(json.dumps(numbers))
        return
    table = _table("Number", "Account SID", "Application", "Name", "SID")
    for n in numbers:
        table.add_row(
            n["number"], n["account_sid"], n["application_sid"] or "", n["friendly_name"], n["sid"]
        )
    _out().print(table)


# -- opt-outs -------------------------------------------------------------------------------

SenderArgument = Annotated[
    str,
    typer.Argument(
        help="One of the account's numbers (a number in a Messaging Service stands for the "
        "service), or a service's SID (MG…)."
    ),
]
HandsetArgument = Annotated[str, typer.Argument(help="The recipient's number.")]


def _scope(sender: str) -> str:
    """A sender argument as stored: a service's SID as given, a number in E.164."""
    from verbal.messaging.optouts import is_service

    return sender if is_service(sender) else _e164(sender)


@optouts_app.command("list")
def optouts_list(
    account_sid: Annotated[
        str | None, typer.Option("--account", help="Account SID; default: the only account.")
    ] = None,
    number: Annotated[
        str | None,
        typer.Option("--number", help="Only the opt-outs of this number or service (MG…)."),
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """List the recipients who opted out, by the number or Messaging Service they opted out
    of."""
    from verbal.messaging.optouts import OptOuts
    from verbal.store.services import Services

    settings = _settings(database_url=database_url)
    sender = _scope(number) if number else None

    async def go() -> list[dict[str, Any]]:
        async with _database(settings) as db:
            account = await _pick_account(db.directory, account_sid)
            optouts = OptOuts(db.sessions, Services(db.sessions))
            return [
                {
                    "account_sid": account.sid,
                    "number": entry.sender,
                    "recipient": entry.recipient,
                    "date_created": entry.date_created.isoformat(),
                }
                for entry in await optouts.entries(account.id, sender)
            ]

    rows = _run(go)
    if as_json:
        print(json.dumps(rows))
        return
    table = _table("Number or service", "Recipient", "Since")
    for row in rows:
        table.add_row(row["number"], row["recipient"], row["date_created"])
    _out().print(table)


def _set_opt_out(number: str, handset: str, database_url: str | None, *, opted_out: bool) -> str:
    """Opt `handset` out of (or back in to) texts from `number`; returns the scope changed
    (the number, or the service it is in)."""
    from verbal.messaging.optouts import OptOuts, is_service
    from verbal.store.services import Services

    settings = _settings(database_url=database_url)
    sender, recipient = _scope(number), _e164(handset)

    async def go() -> str:
        async with _database(settings) as db:
            services = Services(db.sessions)
            if is_service(sender):
                pool = await services.pool(sender)
                owner, kind = (None if pool is None else pool.account_id), "Messaging Service"
            else:
                row = await db.directory.number(sender)
                owner, kind = (None if row is None else row.account_id), "number"
            if owner is None:
                raise _fail(f"{sender} is not a {kind} of any account")
            optouts = OptOuts(db.sessions, services)
            return await optouts.set(owner, sender, recipient, opted_out=opted_out)

    return _run(go)


@optouts_app.command("add")
def optouts_add(
    number: SenderArgument, handset: HandsetArgument, database_url: DatabaseOption = None
) -> None:
    """Opt a recipient out of texts from a number (its whole Messaging Service when it is in
    one), as if they had texted STOP (no reply)."""
    scope = _set_opt_out(number, handset, database_url, opted_out=True)
    _out().print(f"{_e164(handset)} opted out of texts from {scope}")


@optouts_app.command("remove")
def optouts_remove(
    number: SenderArgument, handset: HandsetArgument, database_url: DatabaseOption = None
) -> None:
    """Let a number (its whole Messaging Service when it is in one) text a recipient again,
    as if they had texted START (no reply)."""
    scope = _set_opt_out(number, handset, database_url, opted_out=False)
    _out().print(f"{_e164(handset)} may get texts from {scope} again")


# -- messages -------------------------------------------------------------------------------


@messages_app.command("list")
def messages_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """The newest messages of every account."""
    from sqlalchemy import select

    from verbal.store.models import Message

    settings = _settings(database_url=database_url)

    async def go() -> list[dict[str, Any]]:
        async with _database(settings) as db, db.sessions() as session:
            rows = await session.scalars(select(Message).order_by(Message.id.desc()).limit(limit))
            return [_message_json(m) for m in rows]

    messages = _run(go)
    if as_json:
        print(json.dumps(messages))
        return
    table = _table("SID", "Direction", "From", "To", "Status", "Error", "Created")
    for m in messages:
        table.add_row(
            m["sid"],
            m["direction"],
            m["from"],
            m["to"],
            m["status"],
            str(m["error_code"] or ""),
            m["date_created"],
        )
    _out().print(table)


@messages_app.command("show")
def messages_show(
    sid: Annotated[str, typer.Argument(help="The message SID (SM…).")],
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """A message's status history and every status-callback attempt."""
    from sqlalchemy import select

    from verbal.messaging.timeline import load_timeline
    from verbal.store.models import Message

    settings = _settings(database_url=database_url)

    async def go() -> dict[str, Any]:
        async with _database(settings) as db:
            async with db.sessions() as session:
                account_id = await session.scalar(
                    select(Message.account_id).where(Message.sid == sid)
                )
            timeline = None
            if account_id is not None:
                timeline = await load_timeline(db.sessions, account_id, sid)
            if timeline is None:
                raise _fail(f"no message {sid}")
            return {
                **_message_json(timeline.message),
                "events": [
                    {
                        "status": e.status,
                        "at": e.occurred_at.isoformat(),
                        "error_code": e.error_code,
                    }
                    for e in timeline.events
                ],
                "callbacks": [
                    {
                        "event": a.event,
                        "url": a.url,
                        "attempt": a.attempt,
                        "response_status": a.response_status,
                        "error": a.error,
                        "latency_ms": a.latency_ms,
                        "at": a.attempted_at.isoformat(),
                    }
                    for a in timeline.attempts
                ],
            }

    story = _run(go)
    if as_json:
        print(json.dumps(story))
        return
    _out().print(
        f"[bold]{story['sid']}[/bold] {story['from']} → {story['to']}: {story['status']}"
        + (f" (error {story['error_code']})" if story["error_code"] else "")
    )
    events = _table("Status", "At", "Error", title="Status history")
    for e in story["events"]:
        events.add_row(e["status"], e["at"], str(e["error_code"] or ""))
    _out().print(events)
    if story["callbacks"]:
        callbacks = _table("Event", "Attempt", "Result", "Latency ms", "At", title="Callbacks")
        for c in story["callbacks"]:
            result = str(c["response_status"]) if c["response_status"] else (c["error"] or "")
            callbacks.add_row(c["event"], str(c["attempt"]), result, str(c["latency_ms"]), c["at"])
        _out().print(callbacks)


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "sid": message.sid,
        "direction": message.direction,
        "from": message.from_number,
        "to": message.to_number,
        "body": message.body,
        "status": message.status,
        "error_code": message.error_code,
        "num_segments": message.num_segments,
        "encoding": message.encoding,
        "date_created": message.date_created.isoformat(),
    }


# -- applications ---------------------------------------------------------------------------


def _application_json(application: Application, account_sid: str) -> dict[str, Any]:
    return {
        "sid": application.sid,
        "account_sid": account_sid,
        "friendly_name": application.friendly_name,
        "dialect": application.dialect,
        "sms_url": application.sms_url,
        "sms_method": application.sms_method,
        "sms_fallback_url": application.sms_fallback_url,
        "voice_url": application.voice_url,
        "messaging_token": application.messaging_token,
        "voice_token": application.voice_token,
    }


Method = Annotated[str, typer.Option(help="GET or POST.")]


@apps_app.command("create")
def apps_create(
    sms_url: Annotated[str, typer.Option("--sms-url", help="Where inbound messages are sent.")],
    name: Annotated[str, typer.Option("--name")] = "App",
    dialect: Annotated[
        str, typer.Option(help="tropo, rcml (also twiml), plivo, or auto (RCML or Plivo).")
    ] = "auto",
    sms_method: Method = "POST",
    fallback_url: Annotated[str | None, typer.Option("--fallback-url")] = None,
    account_sid: Annotated[
        str | None, typer.Option("--account", help="Account SID; default: the only account.")
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create an application; prints its SID and Tropo launch tokens."""
    dialect = {"twiml": "rcml"}.get(dialect.lower(), dialect.lower())
    if dialect not in ("tropo", "rcml", "plivo", "auto"):
        raise _fail(f"unknown dialect {dialect!r}: use tropo, rcml, twiml, plivo or auto")
    if sms_method.upper() not in ("GET", "POST"):
        raise _fail("--sms-method must be GET or POST")
    settings = _settings(database_url=database_url)

    async def go() -> dict[str, Any]:
        async with _database(settings) as db:
            account = await _pick_account(db.directory, account_sid)
            application = await db.directory.create_application(
                account,
                name,
                dialect=dialect,
                sms_url=sms_url,
                sms_method=sms_method.upper(),
                sms_fallback_url=fallback_url,
            )
            return _application_json(application, account.sid)

    created = _run(go)
    if as_json:
        print(json.dumps(created))
    else:
        _out().print(f"application {created['sid']} ({created['dialect']}) → {created['sms_url']}")
        _out().print(f"Tropo messaging token: {created['messaging_token']}")


@apps_app.command("list")
def apps_list(as_json: JsonFlag = False, database_url: DatabaseOption = None) -> None:
    """List applications."""
    settings = _settings(database_url=database_url)

    async def go() -> list[dict[str, Any]]:
        async with _database(settings) as db:
            owners = {a.id: a.sid for a in await db.directory.accounts()}
            return [
                _application_json(a, owners[a.account_id])
                for a in await db.directory.applications()
            ]

    applications = _run(go)
    if as_json:
        print(json.dumps(applications))
        return
    table = _table("SID", "Name", "Dialect", "SMS URL")
    for a in applications:
        table.add_row(a["sid"], a["friendly_name"], a["dialect"], a["sms_url"] or "")
    _out().print(table)


@numbers_app.command("attach")
def numbers_attach(
    number: Annotated[str, typer.Argument(help="One of the account's numbers.")],
    application_sid: Annotated[str, typer.Option("--app", help="The application's SID (AP…).")],
    database_url: DatabaseOption = None,
) -> None:
    """Send a number's inbound messages to an application."""
    settings = _settings(database_url=database_url)
    e164 = _e164(number)

    async def go() -> None:
        async with _database(settings) as db:
            application = await db.directory.application(application_sid)
            if application is None:
                raise _fail(f"no application {application_sid}")
            try:
                await db.directory.attach(e164, application)
            except LookupError as exc:
                raise _fail(str(exc)) from None

    _run(go)
    _out().print(f"{e164} now runs {application_sid}")


# -- carriers -------------------------------------------------------------------------------


@carriers_app.command("list")
def carriers_list(as_json: JsonFlag = False, database_url: DatabaseOption = None) -> None:
    """List the carriers, what they reach, and how each SMPP bind is doing.

    Bind states are those the worker processes last reported to the database (every
    `carrier_status_seconds`); a worker silent for three intervals is shown as stale.
    """
    settings = _settings(database_url=database_url)
    rows: list[dict[str, Any]] = []
    if settings.sandbox_enabled:
        rows.append(
            {
                "name": "sandbox",
                "kind": "sandbox",
                "reaches": settings.sandbox_prefixes,
                "rate_per_second": settings.sandbox_rate_per_second or None,
            }
        )
    if settings.carriers:
        rows += _run(lambda: _smpp_carriers(settings))
    if as_json:
        print(json.dumps(rows))
        return
    table = _table("Name", "Kind", "Reaches", "Senders", "Priority", "Rate limit")
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            ", ".join(f"{p}…" for p in r["reaches"]) or "any number",
            ", ".join(r.get("senders", [])) or "any",
            str(r.get("priority", "")),
            f"{r['rate_per_second']}/s" if r["rate_per_second"] else "unlimited",
        )
    _out().print(table)
    if settings.carriers:
        _out().print(_binds_table(rows))


async def _smpp_carriers(settings: Settings) -> list[dict[str, Any]]:
    from verbal.carriers import smpp_status

    async with _database(settings) as db:
        reported = await smpp_status.read(db.sessions, settings.carrier_status_seconds)
    rows = []
    for carrier in settings.carriers:
        binds = [asdict(bind) for bind in reported if bind.carrier == carrier.name]
        rows.append(
            {
                "name": carrier.name,
                "kind": "smpp",
                "reaches": carrier.prefixes,
                "senders": carrier.senders,
                "priority": carrier.priority,
                "rate_per_second": carrier.throughput or None,
                "smsc": f"{carrier.host}:{carrier.port}",
                "system_id": carrier.system_id,
                "bind_mode": carrier.bind_mode,
                "binds_per_worker": carrier.binds,
                "binds": binds,
            }
        )
    return rows


def _ago(moment: float | None, now: float) -> str:
    return "" if moment is None else f"{max(0.0, now - moment):.0f}s ago"


def _binds_table(rows: list[dict[str, Any]]) -> Table:
    now = time.time()
    table = _table("Carrier", "Bind", "Worker", "State", "Window", "Sent", "Rate", "Last error")
    for row in rows:
        if row["kind"] != "smpp":
            continue
        if not row["binds"]:
            table.add_row(row["name"], "", "", "no worker has reported (none running?)")
        for bind in row["binds"]:
            state = bind["state"]
            if bind["stale"]:
                state = f"stale: worker silent since {_ago(bind['updated_at'], now)}"
            elif state == "bound":
                state = f"bound {_ago(bind['bound_since'], now)}"
            error = bind["last_error"] or ""
            if error:
                error = f"{error} ({_ago(bind['last_error_at'], now)})"
            table.add_row(
                row["name"],
                f"{bind['bind']} ({bind['mode']})",
                bind["owner"],
                state,
                f"{bind['in_flight']}/{bind['window']}",
                f"{bind['submitted']} ({bind['throttled']} throttled)",
                f"{bind['rate']:.1f}/s",
                error,
            )
    return table


# -- db -------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply pending schema migrations (serve does this on start too)."""
    settings = _settings(database_url=database_url)

    async def go() -> None:
        async with _database(settings):
            pass

    _run(go)
    _out().print("database schema is current")


@app.command()
def version() -> None:
    """Print Verbal's version."""
    print(__version__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
