"""What the benchmarks share: real Verbal servers, their database, peers and the load.

Every benchmark drives Verbal as its users do: `python -m verbal serve` in a process of its
own, HTTP over loopback, status callbacks and app requests to small servers in processes of
their own (`_peers.py`). Nothing here imports `verbal`: a benchmark sees the server only
through its API, its CLI and, read-only, its database. The server is always the checkout this
file belongs to (its root goes first on `PYTHONPATH`), whatever else is installed, so a
figure belongs to the commit printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import psutil

from verbal.webhooks.keepalive import KeepAliveClient, RequestFailed

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The node-smpp peers of the tests (smsc.js, esme.js), which the SMPP benchmarks also drive.
NODE_PEERS = REPO / "tests" / "peers"
FINAL_STATUSES = ("delivered", "undelivered", "failed", "canceled", "received")
SENDER = "+15550001000"
# How long nothing may move in the database before a wait for the pipeline gives up.
STALL_SECONDS = 60.0

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the benchmark's own event loop, on uvloop when it is there (uvicorn[standard]
    installs it): the load generator's overhead is then smaller and steadier."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def handset(i: int, block: int = 3) -> str:
    """A distinct sandbox handset per message or session: +1555 is the sandbox's prefix."""
    return f"+1555{block}{i % 1_000_000:06d}"


def node_peers_missing() -> str | None:
    """Why the node-smpp peers cannot run, or None once their npm package is installed
    (which needs the registry: smpp.py asks before it enters its namespace). The tests'
    `tests/peers/node.py` installs it; it is loaded from its file, as `tests` is no package
    the benchmarks can import."""
    spec = importlib.util.spec_from_file_location("node_peers", NODE_PEERS / "node.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing: str | None = module.install()
    return missing


@dataclass(frozen=True)
class Credentials:
    """The first account's SID and token, fixed before the server starts so that the
    benchmark knows them without reading the server's output."""

    account_sid: str
    auth_token: str

    @classmethod
    def random(cls) -> Credentials:
        return cls("AC" + secrets.token_hex(16), secrets.token_hex(16))

    @property
    def authorization(self) -> str:
        return aiohttp.BasicAuth(self.account_sid, self.auth_token).encode()

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"


# -- the database, read-only ------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    messages: int
    not_final: int
    # Work left: messages whose row still holds work (a submission, callbacks owed: their
    # `work_at` is set until every callback is settled), and jobs (app sessions).
    work: int

    @property
    def settled(self) -> bool:
        return self.not_final == 0 and self.work == 0


# Counted through the index on work_at, and cheap: see Progress.work.
WORK_LEFT = (
    "SELECT (SELECT COUNT(*) FROM messages WHERE work_at IS NOT NULL) + (SELECT COUNT(*) FROM jobs)"
)


def _final_list() -> str:
    return ", ".join(f"'{status}'" for status in FINAL_STATUSES)


class Database:
    """The benchmark's own database: a SQLite file in the work directory, or a scratch
    database made on a PostgreSQL server and dropped afterwards. The benchmark only reads it;
    Verbal writes it."""

    def __init__(self, url: str, *, sqlite_path: Path | None = None, admin_url: str = "") -> None:
        self.url = url
        self.sqlite_path = sqlite_path
        self._admin_url = admin_url
        self._connection: Any = None  # asyncpg's, opened on first use

    @property
    def kind(self) -> str:
        return "SQLite" if self.sqlite_path else "PostgreSQL"

    @classmethod
    def sqlite(cls, workdir: Path) -> Database:
        path = workdir / "verbal.db"
        return cls(f"sqlite:///{path}", sqlite_path=path)

    @classmethod
    async def postgres(cls, server_url: str) -> Database:
        """A fresh database on the server of `server_url`, which only has to let us in and
        create databases: Verbal's bootstrap account needs an empty one, and the progress
        counts must see this run's rows alone."""
        import asyncpg

        admin = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        name = f"verbal_bench_{secrets.token_hex(6)}"
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        parts = urlsplit(admin)
        return cls(urlunsplit(parts._replace(path=f"/{name}")), admin_url=admin)

    @classmethod
    async def open(cls, workdir: Path, server_url: str | None) -> Database:
        if server_url is None:
            return cls.sqlite(workdir)
        if not server_url.startswith("postgresql"):
            raise SystemExit("--database-url must be a postgresql:// URL (SQLite is the default)")
        return await cls.postgres(server_url)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            # In a thread: a count over a large table would otherwise stall the load
            # generator's loop, and sqlite3 lets go of the GIL while it works.
            return await asyncio.to_thread(self._sqlite_rows, self.sqlite_path, sql)
        if self._connection is None:
            import asyncpg

            self._connection = await asyncpg.connect(self.url)
        return [tuple(row) for row in await self._connection.fetch(sql)]

    @staticmethod
    def _sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
        uri = f"{path.as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return db.execute(sql).fetchall()

    async def scalar(self, sql: str) -> Any:
        return (await self.rows(sql))[0][0]

    async def progress(self) -> Progress:
        [(messages, not_final, work)] = await self.rows(
            "SELECT (SELECT COUNT(*) FROM messages),"
            f" (SELECT COUNT(*) FROM messages WHERE status NOT IN ({_final_list()})),"
            f" ({WORK_LEFT})"
        )
        return Progress(int(messages), int(not_final), int(work))

    async def statuses(self) -> dict[str, int]:
        rows = await self.rows("SELECT status, COUNT(*) FROM messages GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    async def size_bytes(self) -> int:
        if self.sqlite_path is not None:
            # The WAL holds recent commits until a checkpoint moves them into the file.
            files = (self.sqlite_path, self.sqlite_path.with_name(self.sqlite_path.name + "-wal"))
            return sum(f.stat().st_size for f in files if f.exists())
        return int(await self.scalar("SELECT pg_database_size(current_database())"))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        if self._admin_url:
            import asyncpg

            name = urlsplit(self.url).path.lstrip("/")
            connection = await asyncpg.connect(self._admin_url)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()


# -- processes --------------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Process:
    """A child process serving HTTP on a loopback port, its output kept in files."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._logs = [workdir / f"{name}.stdout", workdir / f"{name}.stderr"]
        self._files: list[IO[bytes]] = [path.open("wb") for path in self._logs]
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in argv],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._files[0],
            stderr=self._files[1],
        )
        self.ps = psutil.Process(self.process.pid)

    def url(self, path: str) -> str:
        return self.base_url + path

    def tail(self, lines: int = 30) -> str:
        parts = []
        for path in self._logs:
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name} (last {lines} lines) ---")
            parts.extend(text.splitlines()[-lines:])
        return "\n".join(parts)

    def wait_answering(self, path: str, timeout: float = 60.0) -> Any:
        """Wait until GET `path` answers 200; its JSON. The process dying ends the wait."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with {self.process.returncode}\n{self.tail()}"
                )
            try:
                return _get_json(self.url(path), timeout=2)
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not answer {path} in {timeout:.0f} s\n{self.tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"{self.name} died with {self.process.returncode}\n{self.tail()}")

    def _tree(self) -> list[psutil.Process]:
        """The process and its children: `verbal serve` on SQLite forks its pipeline."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return [self.ps]

    def rss(self) -> int:
        """Resident memory of the process tree, each process's RSS summed (pages the fork
        shares are counted once per process: an upper bound)."""
        return sum(int(p.memory_info().rss) for p in self._tree())

    def pss(self) -> int:
        """Proportional set size of the process tree: shared pages split between sharers."""
        return sum(int(p.memory_full_info().pss) for p in self._tree())

    def processes(self) -> int:
        return len(self._tree())

    def cpu_seconds(self) -> float:
        """User + system CPU of the process tree so far."""
        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        """SIGTERM, as a service manager would; SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for file in self._files:
            file.close()


def server_env(database: Database, credentials: Credentials) -> dict[str, str]:
    """The environment of every Verbal process and CLI call of a run.

    VERBAL_* variables of the caller's environment reach the server, so any setting can be
    tried (`VERBAL_LOG_LEVEL=warning python bench/...`); the database and the first account
    are the benchmark's own.
    """
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        "PYTHONUNBUFFERED": "1",
        "VERBAL_DATABASE_URL": database.url,
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": credentials.account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": credentials.auth_token,
    }


def start_server(name: str, workdir: Path, env: dict[str, str], role: str = "all") -> Process:
    argv = [sys.executable, "-m", "verbal", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    server = Process(name, [*argv, "--role", role], workdir, env)
    # /readyz: the database answers and, where it runs one, the dispatcher runs.
    server.wait_answering("/readyz")
    return server


def start_peer(name: str, workdir: Path, *args: str) -> Process:
    argv = [sys.executable, str(BENCH / "_peers.py"), *args, "--port", "{port}"]
    peer = Process(name, argv, workdir, {**os.environ, "PYTHONUNBUFFERED": "1"})
    peer.wait_answering("/stats")
    return peer


def cli(env: dict[str, str], workdir: Path, *args: str) -> str:
    """Run `verbal <args>` as a user would (beside the running server); its output."""
    done = subprocess.run(
        [sys.executable, "-m", "verbal", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"verbal {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


async def peer_json(peer: Process, path: str) -> Any:
    return await asyncio.to_thread(_get_json, peer.url(path), 60.0)


class LoadClient:
    """The load generator's HTTP client: form posts with Basic auth on kept-alive
    connections, at most `connections` at a time.

    It is Verbal's own lean client (`verbal/webhooks/keepalive.py`) rather than aiohttp,
    which cost the generator about 0.2 ms of CPU a request: at the rates measured here that
    was a third of a core taken from the server under test.
    """

    def __init__(self, base_url: str, credentials: Credentials, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = KeepAliveClient()
        self._slots = asyncio.Semaphore(connections)
        headers = {"Authorization": credentials.authorization, "Accept": "application/json"}
        self._form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        self._json = {**headers, "Content-Type": "application/json"}

    async def post_form(self, path: str, data: Mapping[str, str]) -> tuple[int, str]:
        """POST `data` to `path` as a form: the answer's status and (up to 64 KiB of) its
        body."""
        return await self._post(path, self._form, urlencode(data).encode())

    async def post_json(self, path: str, data: Any) -> tuple[int, str]:
        """POST `data` to `path` as JSON, as `post_form` does a form."""
        return await self._post(path, self._json, json.dumps(data).encode())

    async def _post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        async with self._slots:
            answer = await self._client.request(
                "POST",
                self.base_url + path,
                headers,
                body,
                excerpt_limit=1 << 16,
                time_limit=120,
            )
        return answer.status, answer.body.decode("utf-8", "replace")

    def close(self) -> None:
        self._client.close()


# -- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One request of a load: when it was due, how late it started, how long it took."""

    index: int
    due: float  # wall-clock epoch seconds, comparable with other processes' clocks
    lag: float  # seconds from due to the request starting: the generator falling behind
    latency: float  # seconds from due to the answer read, so queueing anywhere counts
    status: int  # the HTTP status, 0 when there was no answer
    value: str  # what the answer said (a SID), or what went wrong


Fire = Callable[[int], Awaitable[tuple[int, str]]]


async def offer(fire: Fire, count: int, *, rate: float | None, concurrency: int = 32) -> list[Shot]:
    """Run `fire(0)` … `fire(count - 1)`.

    With a rate, open-loop: request i is due at start + i / rate and starts then, whether or
    not earlier ones have been answered, and its latency counts from when it was due, so a
    slow server cannot slow the load down and hide its queue (coordinated omission).
    Without one, closed-loop: `concurrency` requests in flight, each due when it starts.
    """
    loop = asyncio.get_running_loop()
    wall0, mono0 = time.time(), loop.time()

    async def shot(i: int, due: float) -> Shot:
        started = loop.time()
        try:
            status, value = await fire(i)
        except (aiohttp.ClientError, RequestFailed, OSError, TimeoutError, ValueError) as exc:
            status, value = 0, f"{type(exc).__name__}: {exc}"[:200]
        return Shot(i, wall0 + due - mono0, started - due, loop.time() - due, status, value)

    if rate is None:
        shots: list[Shot] = []
        indices = iter(range(count))

        async def worker() -> None:
            for i in indices:
                shots.append(await shot(i, loop.time()))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
        return sorted(shots, key=lambda s: s.index)
    start = loop.time() + 0.01
    tasks = []
    for i in range(count):
        due = start + i / rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(shot(i, due)))
    return list(await asyncio.gather(*tasks))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), math.ceil(p / 100 * len(values))))
    return values[rank - 1]


def latency_line(seconds: Sequence[float]) -> str:
    ordered = sorted(seconds)
    parts = [f"p{p} {percentile(ordered, p) * 1000:,.1f}" for p in (50, 90, 99)]
    return f"{' '.join(parts)} max {ordered[-1] * 1000:,.1f} ms" if ordered else "no answers"


@dataclass(frozen=True)
class LoadFigures:
    offered: int
    ok: int
    errors: Counter[str]
    achieved_per_second: float  # answered OK per second, first due to last answer
    max_lag: float
    latencies: list[float]

    @classmethod
    def of(cls, shots: Sequence[Shot], ok_status: int) -> LoadFigures:
        good = [s for s in shots if s.status == ok_status]
        errors = Counter(
            f"{s.status} {s.value[:80]}" if s.status else s.value[:80]
            for s in shots
            if s.status != ok_status
        )
        rate = 0.0
        if good:
            span = max(s.due + s.latency for s in good) - min(s.due for s in shots)
            rate = len(good) / span if span > 0 else float("inf")
        return cls(
            offered=len(shots),
            ok=len(good),
            errors=errors,
            achieved_per_second=rate,
            max_lag=max((s.lag for s in shots), default=0.0),
            latencies=[s.latency for s in good],
        )

    def error_line(self) -> str:
        if not self.errors:
            return "none"
        common = "; ".join(f"{n} x {what}" for what, n in self.errors.most_common(3))
        return f"{sum(self.errors.values())} ({common})"

    def lag_warning(self, rate: float | None) -> str | None:
        """Requests that started well after they were due mean the generator, not the
        server, set the pace for a while; say so next to the figures."""
        if rate is None or self.max_lag < 0.01:
            return None
        return (
            f"note: the load generator started a request up to {self.max_lag * 1000:,.0f} ms "
            "late; latencies still count from when it was due"
        )


# -- measuring processes ----------------------------------------------------------------------


class Metered(Protocol):
    """What CpuMeter needs of a process: a `Process`, or any other child it can measure."""

    @property
    def name(self) -> str: ...

    def cpu_seconds(self) -> float: ...


class CpuMeter:
    """CPU seconds each process used between `start()` and `stop()`: shows who had the
    cores, since generator, peers and server all share the machine."""

    def __init__(self, processes: Mapping[str, Metered]) -> None:
        self._processes = processes
        self._me = psutil.Process()
        self._before: dict[str, float] = {}
        self._wall = 0.0

    def _now(self) -> dict[str, float]:
        mine = self._me.cpu_times()
        figures = {"load generator": float(mine.user + mine.system)}
        for name, process in self._processes.items():
            figures[name] = process.cpu_seconds()
        return figures

    def start(self) -> None:
        self._before, self._wall = self._now(), time.monotonic()

    def line(
        self,
        servers: Sequence[Metered] = (),
        items: int = 0,
        unit: str = "",
        *,
        label: str = "Verbal",
    ) -> str:
        """The CPU each process used; with `servers` and `items`, also the servers' CPU per
        item, a figure that a busy machine disturbs much less than a rate. `label` names
        whose servers they are (another gateway measured beside Verbal)."""
        now, wall = self._now(), time.monotonic() - self._wall
        used = {name: now[name] - self._before[name] for name in now}
        listed = ", ".join(f"{name} {seconds:,.1f}" for name, seconds in used.items())
        cores = os.cpu_count() or 1
        line = f"CPU seconds used: {listed} (of {cores} cores x {wall:,.1f} s)"
        if servers and items:
            verbal = sum(used[server.name] for server in servers)
            line += f"; {label}'s CPU per {unit}: {verbal / items * 1000:,.1f} ms"
        return line


class RssSampler:
    """Samples the resident memory of the server processes every `interval` seconds."""

    def __init__(self, servers: Sequence[Process], interval: float, *, echo: bool = False) -> None:
        self.servers = servers
        self.interval = interval
        self.echo = echo  # print each sample as it is taken, for long runs
        self.samples: list[tuple[float, int]] = []  # (seconds since start, total RSS)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> int:
        return sum(server.rss() for server in self.servers)

    async def _run(self) -> None:
        start = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - start, self.sample()))
            if self.echo:
                print(f"  {self.samples[-1][0]:7.0f} s  RSS {mib(self.samples[-1][1])}", flush=True)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, self.sample()))


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# -- the pipeline: Verbal, a sender number, a callback receiver ---------------------------------


class Pipeline:
    """Verbal serving the sandbox network, an account with one sender number and, when asked
    for, a status-callback receiver; on SQLite one `all` server (by default the API process
    and the pipeline process it forks), on PostgreSQL either one `all` process or an `api`
    process and `workers` worker processes."""

    def __init__(self, workdir: Path, database: Database, credentials: Credentials) -> None:
        self.workdir = workdir
        self.database = database
        self.credentials = credentials
        self.env = server_env(database, credentials)
        self.api: Process | None = None
        self.workers: list[Process] = []
        self.receiver: Process | None = None
        self.http: LoadClient | None = None
        self.dispatching = True
        # Who sends: the number, or a Messaging Service (`send_through_service`).
        self.sending: dict[str, str] = {"From": SENDER}

    @classmethod
    async def start(
        cls,
        stack: AsyncExitStack,
        workdir: Path,
        *,
        database_url: str | None,
        workers: int | None = None,
        receiver: bool = True,
        connections: int = 256,
        settings: dict[str, str] | None = None,
    ) -> Pipeline:
        """`settings`: VERBAL_* variables of the benchmark's own (a carrier to declare, say),
        over those of the caller's environment."""
        if workers is not None and database_url is None:
            raise SystemExit("--workers needs PostgreSQL (--database-url): SQLite has one process")
        database = await Database.open(workdir, database_url)
        stack.push_async_callback(database.close)
        self = cls(workdir, database, Credentials.random())
        self.env.update(settings or {})
        # An api process alone accepts messages that nothing will ever take.
        self.dispatching = workers != 0
        self.api = start_server("verbal", workdir, self.env, "all" if workers is None else "api")
        stack.callback(self.api.stop)
        cli(self.env, workdir, "numbers", "add", SENDER, "--account", self.credentials.account_sid)
        for n in range(workers or 0):
            worker = start_server(f"worker{n}", workdir, self.env, "worker")
            stack.callback(worker.stop)
            self.workers.append(worker)
        if receiver:
            self.receiver = start_peer("receiver", workdir, "callbacks")
            stack.callback(self.receiver.stop)
        self.http = LoadClient(self.api.base_url, self.credentials, connections)
        stack.callback(self.http.close)
        return self

    async def send_through_service(self, pool: int) -> str:
        """Send with `MessagingServiceSid` from now on, through a new service whose pool
        holds `pool` new numbers (claimed through the Twilio API); the service's SID."""
        assert self.http is not None
        status, text = await self.http.post_form("/v1/Services", {"FriendlyName": "bench"})
        if status != 201:
            raise SystemExit(f"creating the Messaging Service: {status} {text}")
        service = str(json.loads(text)["sid"])
        numbers = f"/2010-04-01/Accounts/{self.credentials.account_sid}/IncomingPhoneNumbers.json"
        for n in range(pool):
            status, text = await self.http.post_form(numbers, {"PhoneNumber": f"+155500011{n:02d}"})
            if status != 201:
                raise SystemExit(f"claiming a pool number: {status} {text}")
            member = {"PhoneNumberSid": str(json.loads(text)["sid"])}
            status, text = await self.http.post_form(f"/v1/Services/{service}/PhoneNumbers", member)
            if status != 201:
                raise SystemExit(f"adding a pool number: {status} {text}")
        self.sending = {"MessagingServiceSid": service}
        return service

    @property
    def servers(self) -> list[Process]:
        return [p for p in (self.api, *self.workers) if p is not None]

    def processes(self) -> dict[str, Process]:
        named = {p.name: p for p in self.servers}
        if self.receiver is not None:
            named["receiver"] = self.receiver
        return named

    def check_alive(self) -> None:
        for process in self.processes().values():
            process.check_alive()

    async def send(
        self,
        count: int,
        *,
        rate: float | None,
        concurrency: int = 32,
        first: int = 0,
        to: Callable[[int], str] = handset,
    ) -> list[Shot]:
        """Send `count` messages through the Twilio API, message i to `to(i)`: by default a
        sandbox handset of its own."""
        assert self.http is not None
        path = self.credentials.messages_path
        callback = self.receiver.url("/status") if self.receiver else None

        async def fire(i: int) -> tuple[int, str]:
            assert self.http is not None
            data = {"To": to(first + i), **self.sending, "Body": f"bench {first + i}"}
            if callback:
                data["StatusCallback"] = callback
            status, text = await self.http.post_form(path, data)
            if status == 201:
                return 201, str(json.loads(text)["sid"])
            return status, text[:200]

        return await offer(fire, count, rate=rate, concurrency=concurrency)

    async def settle(self, stall_seconds: float = STALL_SECONDS) -> tuple[float, Progress]:
        """Wait until every message is final and no job is left (status callbacks
        included); the wall-clock time it was seen so, to within the 0.1 s poll."""
        last = await self.database.progress()
        moved = time.monotonic()
        while not last.settled:
            self.check_alive()
            await asyncio.sleep(0.1)
            # Counting the work left is cheap; the scan for messages not final holds a read
            # snapshot for a while, which keeps SQLite's checkpoints from finishing, so it
            # runs only once no work looks left.
            work = int(await self.database.scalar(WORK_LEFT))
            if work:
                now = Progress(last.messages, last.not_final, work)
            else:
                now = await self.database.progress()
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > stall_seconds:
                raise SystemExit(
                    f"nothing moved for {stall_seconds:.0f} s: {now}\n{self.api_tail()}"
                )
        return time.time(), last

    def api_tail(self) -> str:
        return "\n".join(p.tail() for p in self.servers)


@dataclass(frozen=True)
class EndToEnd:
    """One end-to-end load: what was sent, how it went, when each message was done."""

    shots: list[Shot]
    window_end: float  # wall clock: when the last message was due
    backlog: Progress  # the database at window_end
    settled_at: float  # wall clock: every message final, no job left
    finals: dict[str, float]  # message SID -> when its final status callback arrived
    receiver: dict[str, Any]  # the receiver's /stats

    @property
    def accepted(self) -> list[Shot]:
        return [s for s in self.shots if s.status == 201]

    @property
    def first_due(self) -> float:
        return min(s.due for s in self.shots)

    def latencies(self) -> list[float]:
        """Seconds from each message being due to its final callback arriving."""
        return [self.finals[s.value] - s.due for s in self.accepted if s.value in self.finals]

    def missing(self) -> int:
        return sum(1 for s in self.accepted if s.value not in self.finals)

    def last_final(self) -> float:
        return max(
            (self.finals[s.value] for s in self.accepted if s.value in self.finals),
            default=float("nan"),
        )

    def done_by(self, moment: float) -> int:
        return sum(1 for s in self.accepted if self.finals.get(s.value, float("inf")) <= moment)

    def summary(self, rate: float | None) -> str:
        """The run in one line, for benchmarks that only use it as load."""
        accepted = LoadFigures.of(self.shots, 201)
        line = f"{len(self.shots):,} messages offered, {accepted.ok:,} accepted"
        if rate is not None:
            window = self.window_end - self.first_due
            done = self.done_by(self.window_end)
            line += (
                f" ({accepted.achieved_per_second:,.0f}/s of {rate:,.0f}/s offered),"
                f" {done / window:,.0f}/s final within the window, backlog at its end"
                f" {self.backlog.not_final:,} messages not final and"
                f" {self.backlog.work:,} with work left"
            )
        drained = self.settled_at - self.window_end
        return f"{line}; all final {drained:,.1f} s later, {self.missing():,} callbacks missing"

    async def outcome(self, database: Database, final: str = "final") -> list[str]:
        """The `latency`, `final` and `callbacks` lines of a report: what became of every
        accepted message, by its callbacks and by the database (both with the warm-up)."""
        statuses = await database.statuses()
        settled = all(s in FINAL_STATUSES for s in statuses) and self.missing() == 0
        per_message = self.receiver["per_message"]
        return [
            f"latency   due to {final} callback: {latency_line(self.latencies())}",
            f"final     every message final: {'yes' if settled else 'NO'} (database: "
            + ", ".join(f"{s} {n:,}" for s, n in sorted(statuses.items()))
            + f", warm-up included; {final} callbacks missing for {self.missing():,})",
            f"callbacks {self.receiver['callbacks']:,} received (warm-up included); messages by"
            " callbacks each: "
            + ", ".join(f"{k}: {v:,}" for k, v in sorted(per_message.items()))
            + f"; repeated finals {self.receiver['repeated_finals']}",
        ]


async def end_to_end(
    pipeline: Pipeline,
    count: int,
    *,
    rate: float | None,
    concurrency: int = 32,
    first: int = 0,
    to: Callable[[int], str] = handset,
) -> EndToEnd:
    """Send `count` messages with status callbacks and wait until all of them are final."""
    assert pipeline.receiver is not None
    window_end = 0.0
    backlog = Progress(0, 0, 0)

    async def at_window_end() -> None:
        nonlocal window_end, backlog
        if rate is not None:
            await asyncio.sleep(max(0.0, count / rate))
        window_end, backlog = time.time(), await pipeline.database.progress()

    snapshot = asyncio.create_task(at_window_end()) if rate is not None else None
    shots = await pipeline.send(count, rate=rate, concurrency=concurrency, first=first, to=to)
    if snapshot is not None:
        await snapshot
    else:  # closed loop: the window ends with the last answer
        window_end, backlog = time.time(), await pipeline.database.progress()
    settled_at, _ = await pipeline.settle()
    finals = {sid: float(t) for sid, t in (await peer_json(pipeline.receiver, "/finals")).items()}
    stats = await peer_json(pipeline.receiver, "/stats")
    return EndToEnd(shots, window_end, backlog, settled_at, finals, stats)


# -- command lines -----------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, *, workers: bool = True) -> None:
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgresql://user@host:5432/postgres) on which to make a "
        "scratch database, dropped afterwards; default: a temp SQLite file",
    )
    if workers:
        parser.add_argument(
            "--workers",
            type=int,
            help="PostgreSQL only: an api process plus this many worker processes "
            "(default: one process doing both)",
        )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the servers' logs (and the SQLite file) in this directory; default: a "
        "temp directory, removed afterwards",
    )


def database_label(options: argparse.Namespace) -> str:
    if not options.database_url:
        return "SQLite (temp file)"
    layout = "one process"
    if getattr(options, "workers", None) is not None:
        layout = f"api + {options.workers} worker processes"
    return f"PostgreSQL (scratch database), {layout}"


def workdir(stack: AsyncExitStack, chosen: Path | None) -> Path:
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        if (chosen / "verbal.db").exists():
            # A used database keeps its first account: the run's credentials would not work.
            raise SystemExit(f"{chosen} holds a verbal.db from an earlier run: use a new one")
        return chosen.resolve()
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="verbal-bench-")))


# -- what a printout starts with --------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_notes(database: str) -> list[str]:
    """Everything a figure needs beside it to mean something: which code, which machine,
    how busy it was when the run started."""
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    if _git("status", "--porcelain", "--", "verbal", "pyproject.toml"):
        commit += " + uncommitted changes in verbal/ or pyproject.toml"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    loop = "uvloop" if _has_uvloop() else "asyncio"
    return [
        f"commit    {commit}",
        f"machine   {os.cpu_count()} cores ({cpu}), {mib(psutil.virtual_memory().total)} RAM,"
        f" load average {load} at start",
        f"software  Python {platform.python_version()} ({loop} in the load generator),"
        f" {platform.system()} {platform.release()}, database {database}",
    ]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def print_header(title: str, database: str) -> None:
    print(title)
    for line in machine_notes(database):
        print("  " + line)
    print(flush=True)
