"""Shared fixtures: real databases, a live Verbal server, and a real webhook receiver.

Everything here runs for real on loopback: Verbal serves HTTP with uvicorn in a thread of
its own, callbacks go to a `ThreadingHTTPServer`, the database is a SQLite file in a temp
directory or a throw-away PostgreSQL database on the local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import hypothesis
import pytest
import uvicorn

from tests.processes import VerbalProcess
from verbal.config import Settings
from verbal.runtime import Runtime

# Property tests count examples, never time them: hypothesis's 200 ms deadline per example and
# its "too slow" health check fail on a busy machine without anything being wrong.
hypothesis.settings.register_profile(
    "verbal", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("verbal")

POSTGRES_ADMIN_DSN = os.environ.get(
    "VERBAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the `slow` tests first.

    pytest-xdist hands tests out in this order: a test of ten minutes handed out last keeps
    its worker busy long after the others ran out of work, one handed out first overlaps them.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no VERBAL_* settings and no Twilio edge/region rewriting from the outside."""
    for name in list(os.environ):
        if name.startswith("VERBAL_") and name != "VERBAL_TEST_POSTGRES":
            monkeypatch.delenv(name)
    for name in (
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spawned() -> Iterator[list[VerbalProcess]]:
    """Every `verbal` process a test starts; all are ended afterwards, whatever happened."""
    processes: list[VerbalProcess] = []
    yield processes
    for process in processes:
        process.stop()


# -- databases --------------------------------------------------------------------------------


def _postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'verbal.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not _postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import asyncpg

    name = f"verbal_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    try:
        yield url
    finally:
        # A test that asked for `make_verbal` before this fixture gets its servers stopped
        # after the database is gone, where they wait out their shutdown deadline (10 s)
        # on jobs that cannot reach it: stop them first.
        for server in list(_RUNNING):
            if server.settings.database_url == url:
                server.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


# -- a live server ----------------------------------------------------------------------------


def fast_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings with retry delays short enough for tests."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": 0,  # the port of the socket `LiveVerbal.start` binds
        "idle_poll_seconds": 0.2,
        "submit_timeout_seconds": 1.0,
        "submit_retry_base_seconds": 0.1,
        "submit_retry_max_seconds": 0.5,
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.3,
        "bootstrap_account_sid": "AC" + secrets.token_hex(16),
        "bootstrap_auth_token": secrets.token_hex(16),
    }
    values.update(overrides)
    return Settings(**values)


class _Server(uvicorn.Server):
    """uvicorn's server, which notices `should_exit` when woken rather than at its next tick.

    uvicorn looks at `should_exit` every 0.1 s; hundreds of tests each stop a server.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wakeup = asyncio.Event()  # bound to no loop until it is first awaited

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def wake(self) -> None:
        """From the server's loop: look at `should_exit` now."""
        self._wakeup.set()


# The LiveVerbal servers started and not yet stopped.
_RUNNING: list[LiveVerbal] = []


@dataclass
class LiveVerbal:
    """A Verbal server running in a background thread with its own event loop."""

    settings: Settings
    runtime: Runtime = field(init=False)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _thread: threading.Thread = field(init=False)
    _server: uvicorn.Server = field(init=False)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def account_sid(self) -> str:
        return self.settings.bootstrap_account_sid

    @property
    def auth_token(self) -> str:
        return self.settings.bootstrap_auth_token.get_secret_value()

    def start(self) -> None:
        from verbal.api.app import create_app
        from verbal.api.serving import server_config

        # The socket is bound here and handed to uvicorn, so no other test (another
        # pytest-xdist worker's included) can take the port between choosing and binding it.
        # Port 0 (the default of `fast_settings`) lets the kernel choose; settings then say
        # which, before the runtime reads them.
        # IPPROTO_TCP named, as getaddrinfo would: asyncio sets TCP_NODELAY on accepted
        # sockets only when their protocol says TCP, and Nagle would stall answers by 40 ms.
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((self.settings.host, self.settings.port))
        self.settings.port = int(listening.getsockname()[1])
        self.runtime = Runtime(self.settings)
        config = server_config(
            create_app(self.runtime), self.settings, log_level="warning", lifespan="on"
        )
        self._server = _Server(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._server.serve(sockets=[listening]),),
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                listening.close()
                raise RuntimeError("Verbal did not start")
            time.sleep(0.02)
        _RUNNING.append(self)

    def stop(self) -> None:
        if self._loop.is_closed():
            return  # stopped already (a test may stop a server before its fixture does)
        self._server.should_exit = True
        self._loop.call_soon_threadsafe(self._server.wake)
        self._thread.join(timeout=20)
        self._loop.close()
        _RUNNING[:] = [server for server in _RUNNING if server is not self]

    def call(self, coroutine_factory: Callable[[Runtime], Any]) -> Any:
        """Run a coroutine against the runtime on the server's own loop and wait for it."""
        future = asyncio.run_coroutine_threadsafe(coroutine_factory(self.runtime), self._loop)
        return future.result(timeout=30)

    def add_number(self, number: str) -> None:
        async def add(runtime: Runtime) -> None:
            account = await runtime.directory.account(self.account_sid)
            assert account is not None
            await runtime.directory.add_number(account, number)

        self.call(add)

    def add_app(self, dialect: str, sms_url: str, *numbers: str, **options: Any) -> Any:
        """Create an application and attach `numbers` (added to the account if needed)."""

        async def add(runtime: Runtime) -> Any:
            account = await runtime.directory.account(self.account_sid)
            assert account is not None
            application = await runtime.directory.create_application(
                account, "test app", dialect=dialect, sms_url=sms_url, **options
            )
            for number in numbers:
                if await runtime.directory.number(number) is None:
                    await runtime.directory.add_number(account, number)
                await runtime.directory.attach(number, application)
            return application

        return self.call(add)

    def session_log(self, sid: str) -> dict[str, Any]:
        with self.http() as http:
            return http.get(f"/verbal/v1/sessions/{sid}").json()

    def http(self) -> httpx.Client:
        return httpx.Client(
            # Generous: a loaded CI machine can take seconds over what is milliseconds here.
            base_url=self.base_url,
            auth=(self.account_sid, self.auth_token),
            timeout=30,
        )

    def twilio(self) -> Any:
        from twilio.rest import Client

        client = Client(self.account_sid, self.auth_token)
        client.api.base_url = self.base_url
        return client


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file that `migrate` brought from empty to the newest revision, and no more.

    `make_verbal` starts each server on a new SQLite file from a copy of it: running the
    migrations takes most of a server's start (some 0.25 s of CPU, hundreds of times a run),
    and the copy is the very schema they make. The server still runs `migrate` at its start,
    which finds nothing to do. The migrations themselves run from an empty database in
    tests/store/test_migrations.py and in every `verbal` process the tests start.
    """
    from verbal.store import create_engine, migrate

    path = tmp_path_factory.mktemp("migrated") / "verbal.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(build())
    # The last connection closed checkpointed the write-ahead log: the one file is it all.
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _sqlite_file(database_url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@pytest.fixture
def make_verbal(sqlite_url: str, migrated_sqlite: Path) -> Iterator[Callable[..., LiveVerbal]]:
    started: list[LiveVerbal] = []

    def make(database_url: str | None = None, **overrides: Any) -> LiveVerbal:
        database_url = database_url or sqlite_url
        new_file = _sqlite_file(database_url)
        if new_file is not None and not new_file.exists():
            shutil.copyfile(migrated_sqlite, new_file)
        server = LiveVerbal(fast_settings(database_url, **overrides))
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def verbal(make_verbal: Callable[..., LiveVerbal]) -> LiveVerbal:
    """A live server on SQLite with one account owning +15550001000."""
    server = make_verbal()
    server.add_number("+15550001000")
    return server


# -- a real webhook receiver -----------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    url: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]]
    status_returned: int

    @property
    def params(self) -> dict[str, str]:
        return dict(self.form)


class WebhookReceiver:
    """An HTTP server that records every request; `respond` decides each status code."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.respond: Callable[[str, dict[str, str]], int] = lambda path, params: 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                form = parse_qsl(
                    raw if self.command == "POST" else parts.query, keep_blank_values=True
                )
                with receiver._lock:
                    status = receiver.respond(parts.path, dict(form))
                    receiver.requests.append(
                        ReceivedRequest(
                            method=self.command,
                            url=f"{receiver.base_url}{self.path}",
                            path=parts.path,
                            headers=dict(self.headers.items()),
                            form=form,
                            status_returned=status,
                        )
                    )
                body = b"<Response/>"
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/status") -> str:
        return self.base_url + path

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 15.0
    ) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            requests = self.received()
            if predicate(requests):
                return requests
            time.sleep(0.02)
        raise AssertionError(f"webhook receiver: condition not met; got {self.received()}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


# -- a real app server ------------------------------------------------------------------------


@dataclass(frozen=True)
class AppHit:
    method: str
    path: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        query = urlsplit(self.url).query if self.method == "GET" else self.body.decode()
        return dict(parse_qsl(query, keep_blank_values=True))

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)


AppRoute = Callable[[AppHit], tuple[int, str, bytes | str]]


class AppServer:
    """An app on loopback: each path answers with what its route returns."""

    def __init__(self) -> None:
        self.routes: dict[str, AppRoute] = {}
        self.hits: list[AppHit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                hit = AppHit(
                    self.command,
                    path,
                    f"{server.base_url}{self.path}",
                    dict(self.headers.items()),
                    body,
                )
                with server._lock:
                    server.hits.append(hit)
                    route = server.routes.get(path)
                if route is None:
                    status, content_type, payload = 404, "text/plain", b"no such route"
                else:
                    status, content_type, payload = route(hit)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(status)
                if status in (301, 302, 303, 307):
                    self.send_header("Location", content_type)
                    content_type = "text/plain"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def hits_for(self, path: str) -> list[AppHit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def app_server() -> Iterator[AppServer]:
    server = AppServer()
    yield server
    server.close()
