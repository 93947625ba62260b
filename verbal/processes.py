"""Two processes on one SQLite file: the API in one, the pipeline in the other.

Why: one Python process uses one core, and a message costs about as much CPU to accept as to
carry. `verbal serve` on SQLite therefore forks at start: the parent serves HTTP (the APIs,
the console) and the child runs everything that moves messages (submitters, carriers, the
sandbox and its SMSC, callbacks, the job workers). Both write the same file, each through its
own journal. The pipeline's journal writes nothing itself: it sends each of its ticks to the
API process (`ForwardedJournal`), whose journal writes those rows in its own next
transaction and answers when it has committed. One writer, so the two processes never wait
on each other's write lock (SQLite has one per file, and a process waiting for it blocks its
event loop for as long as the busy timeout); and the pipeline, the busier of the two, hands
the cost of writing to the API process.

The two talk over a socket pair with small frames (`encode`, `FrameReader`):

- API to pipeline: `G` go (the database is migrated), `A` messages just accepted (records
  and their accounts' SIDs, pickled: both ends are this program), `W` wake (jobs or parked
  work committed), `M` a metrics request, `j` a forwarded tick committed (or why not);
- pipeline to API: `R` ready (the pipeline runs), `B` its backlog (for admission control),
  `m` its metrics, `J` a journal tick to write.

An accepted message's row is leased to the pipeline process in the very commit that accepts
it, so the pipeline starts on it without reading it back, and nobody else may claim it.

Crashes are whole-server crashes. When the parent dies, the child reads end-of-file and
exits at once; when the child dies, the parent stops serving and exits non-zero. Either way a
supervisor (or the user) starts `verbal serve` again, and the start-up recovery that follows
a kill -9 picks up every accepted message (docs/architecture.md, "Crashes"). The child takes
a lock of its own beside the database before recovering, so that a new pipeline never works
beside one that is still exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import itertools
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, NoReturn

from verbal.messaging.machine import MessageRecord

if TYPE_CHECKING:
    from verbal.config import Settings
    from verbal.runtime import Runtime
    from verbal.store.journal import Journal, Params, Statement

log = logging.getLogger("verbal.processes")

GO, HAND_OVER, WAKE, METRICS, JOURNALED = b"G", b"A", b"W", b"M", b"j"
READY, BACKLOG, METRICS_TEXT, JOURNAL = b"R", b"B", b"m", b"J"
_HEADER = 5  # kind (1 byte) + payload length (4 bytes, big-endian)
# The pipeline reports its backlog at most this often, and only when it changed.
BACKLOG_INTERVAL_SECONDS = 0.05
METRICS_TIMEOUT_SECONDS = 5.0
# How long a new pipeline waits for the previous one (still exiting) to let go.
PIPELINE_LOCK_WAIT_SECONDS = 30.0


# A record travels as the plain tuple it is: pickled as a MessageRecord, every record would
# carry a reference to its class and be rebuilt through it.
_record_values = tuple


# -- frames (no I/O) ----------------------------------------------------------------------------


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


@dataclass
class FrameReader:
    """Cuts a byte stream into `(kind, payload)` frames."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER:
            size = int.from_bytes(self._buffer[1:_HEADER], "big")
            if len(self._buffer) < _HEADER + size:
                break
            kind = bytes(self._buffer[:1])
            frames.append((kind, bytes(self._buffer[_HEADER : _HEADER + size])))
            del self._buffer[: _HEADER + size]
        return frames


class _Link(asyncio.Protocol):
    """One end of the socket pair: frames in go to `on_frame`, the end of the stream to
    `on_lost`."""

    def __init__(
        self, on_frame: Callable[[bytes, bytes], None], on_lost: Callable[[], None]
    ) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._reader = FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for kind, payload in self._reader.feed(data):
            self._on_frame(kind, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost()

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(kind, payload))


async def _connect(sock: socket.socket, link: _Link) -> None:
    await asyncio.get_running_loop().create_unix_connection(lambda: link, sock=sock)


# -- the API process's end ----------------------------------------------------------------------


class PipelineProcess:
    """The forked pipeline, as the API process sees it (`PipelineElsewhere` of messaging)."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid
        self.owner = f"{socket.gethostname()}:{pid}"
        self._link = _Link(self._on_frame, self._on_lost)
        self._reported = 0
        self._handed_since_report = 0
        self._ready = asyncio.Event()
        self._gone = asyncio.Event()
        self._metrics: list[asyncio.Future[bytes]] = []
        self._wake_scheduled = False
        self._outgoing: list[tuple[Any, ...]] = []  # records to hand over this loop turn
        self._outgoing_sids: dict[int, str] = {}
        self._stopping = False
        # The API process's journal, which writes the pipeline's ticks too (set by Runtime).
        self.journal: Journal | None = None
        self.lost = False  # it ended without being asked to
        # Called when the pipeline ends without being asked to (the server must stop).
        self.on_lost: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Connect, and tell the pipeline the database is ready; returns once it runs."""
        await _connect(self._sock, self._link)
        self._link.send(GO)
        ready = asyncio.create_task(self._ready.wait())
        gone = asyncio.create_task(self._gone.wait())
        await asyncio.wait({ready, gone}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        gone.cancel()
        if not self._ready.is_set():
            raise PipelineFailed(f"the pipeline process failed to start ({self._exit_status()})")

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._gone.is_set()

    @property
    def backlog(self) -> int:
        return self._reported + self._handed_since_report

    def hand_over(self, records: list[MessageRecord], account_sids: dict[int, str]) -> None:
        # What is accepted in one loop turn (each request hands over its own message)
        # travels in one frame: one pickling, one system call.
        self._handed_since_report += len(records)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._send_hand_over)
        self._outgoing.extend(_record_values(record) for record in records)
        self._outgoing_sids.update(account_sids)

    def _send_hand_over(self) -> None:
        payload = pickle.dumps((self._outgoing, self._outgoing_sids), pickle.HIGHEST_PROTOCOL)
        self._outgoing, self._outgoing_sids = [], {}
        self._link.send(HAND_OVER, payload)

    def wake(self) -> None:
        # Many commits in one loop turn make one frame.
        if self._wake_scheduled:
            return
        self._wake_scheduled = True
        asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_scheduled = False
        self._link.send(WAKE)

    async def metrics(self) -> bytes:
        """The pipeline's metrics in the Prometheus text format (empty if it is gone)."""
        if not self.ready:
            return b""
        future = asyncio.get_running_loop().create_future()
        self._metrics.append(future)
        self._link.send(METRICS)
        try:
            async with asyncio.timeout(METRICS_TIMEOUT_SECONDS):
                return await future
        except TimeoutError:
            return b""

    def _on_frame(self, kind: bytes, payload: bytes) -> None:
        if kind == READY:
            self._ready.set()
        elif kind == BACKLOG:
            self._reported = int(payload)
            self._handed_since_report = 0
        elif kind == JOURNAL:
            self._write_forwarded(payload)
        elif kind == METRICS_TEXT and self._metrics:
            future = self._metrics.pop(0)
            if not future.done():
                future.set_result(payload)

    def _write_forwarded(self, payload: bytes) -> None:
        """Write a tick of the pipeline's journal in this process's next transaction; answer
        once it committed. A row that fails is the journal's to log (as for its own rows)."""
        assert self.journal is not None, "Runtime sets the journal"
        number, specs = pickle.loads(payload)  # from our own child process
        committed = self.journal.write_many(
            (_statement(spec), row) for spec, rows in specs for row in rows
        )

        def answer(future: asyncio.Future[None]) -> None:
            error = None
            if future.cancelled():
                error = "cancelled"
            elif future.exception() is not None:
                error = f"{type(future.exception()).__name__}: {future.exception()}"
            self._link.send(JOURNALED, pickle.dumps((number, error), pickle.HIGHEST_PROTOCOL))

        committed.add_done_callback(answer)

    def _on_lost(self) -> None:
        self._gone.set()
        for future in self._metrics:
            if not future.done():
                future.set_result(b"")
        self._metrics.clear()
        if not self._stopping:
            self.lost = True
            log.error("the pipeline process ended (%s); stopping the server", self._exit_status())
            self.on_lost()

    def _exit_status(self) -> str:
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return f"exit status {os.waitstatus_to_exitcode(status)}"
        return "still running"

    async def stop(self, deadline: float) -> None:
        """Ask the pipeline to stop (SIGTERM: it hands back what it holds) and wait for it,
        killing it after `deadline` seconds and a margin."""
        self._stopping = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline + 5.0):
                await self._gone.wait()
        if not self._gone.is_set():
            log.error("the pipeline process did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        # It has closed its end: reap it (a moment after that at most).
        with contextlib.suppress(TimeoutError, ChildProcessError):
            async with asyncio.timeout(5.0):
                await asyncio.to_thread(os.waitpid, self.pid, 0)
        if self._link.transport is not None:
            self._link.transport.close()


class PipelineFailed(RuntimeError):
    """The pipeline process ended before it was running."""


def freeze_heap() -> None:
    """Leave what exists now to the collector no more: what start-up imported and built
    lives as long as the process, and full collections that walked it (hundreds of thousands
    of objects) stalled the loop for tens of milliseconds; before a fork, the frozen objects'
    pages are also not copied by the collector's writes."""
    gc.collect()
    gc.freeze()


# -- the schema, migrated apart ------------------------------------------------------------------


class MigrationFailed(RuntimeError):
    """The schema could not be brought to the newest migration; the message says why."""


def migrate_apart(settings: Settings) -> None:
    """Bring the schema to the newest migration in a short-lived child process.

    Alembic, mako and the migration scripts are about 11 MiB that a server needs for a moment
    at start; imported by the child, they leave with it, and neither long-lived process ever
    carries them. Call before any event loop runs (it forks). The child takes the one-server
    lock while it migrates, so a schema is never changed under a running server.
    """
    # Imported here, before the fork: the parent needs it next anyway, and the child, which
    # inherits it, does not load the application a second time only to drop it.
    from verbal.runtime import check_layout, hold_sqlite_lock

    reader, writer = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            check_layout(settings)  # a start that will be refused changes no schema
            lock = hold_sqlite_lock(settings.database_url) if settings.is_sqlite else None
            asyncio.run(_migrate(settings.database_url))
            if lock is not None:
                lock.close()
        # Every failure goes back to the parent as text, which it prints and exits on.
        except Exception as exc:
            os.write(writer, (str(exc) or type(exc).__name__).encode()[:4096])
            _exit(1)
        _exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as failure:
        reason = failure.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if reason or code:
        raise MigrationFailed(reason or f"the migrating process ended with status {code}")


async def _migrate(database_url: str) -> None:
    from verbal.store import create_engine, migrate  # loaded with the runtime, before the fork

    # Alembic imports mako, which highlights the source in its error pages with pygments
    # whenever pygments is installed, as it is with rich: 4.4 MiB of lexers for a process
    # that renders no mako template. Marked absent, mako uses plain text.
    sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]
    engine = create_engine(database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


# -- the pipeline process -----------------------------------------------------------------------


def fork_pipeline(settings: Settings) -> PipelineProcess:
    """Fork the pipeline process; in the parent, return its handle (to connect once the
    parent's loop runs). The child never returns: it runs the pipeline and exits."""
    # What both processes import is imported once, before the fork, and shared; frozen, the
    # objects are left alone by the collector, which would otherwise copy their pages. The
    # HTTP side (FastAPI, the routes, the console) is the API process's alone: imported after
    # the fork, it is neither mapped into the pipeline nor copied there page by page (the
    # pipeline's PSS fell from 55 to 48 MiB, its RSS from 80 to 67).
    import verbal.runtime  # noqa: F401

    freeze_heap()
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        child_end.close()
        # Both stay frozen: what was imported and built before the fork lives as long as
        # the process, and a full collection that walked it all (hundreds of thousands of
        # objects) stalled the loop for tens of milliseconds, which `/healthz` under load
        # and the accept latency's p99 both showed.
        return PipelineProcess(parent_end, pid)
    parent_end.close()
    _exit(_run_pipeline(settings, child_end))


def _exit(code: int) -> NoReturn:
    logging.shutdown()
    os._exit(code)


def _run_pipeline(settings: Settings, sock: socket.socket) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop wheels
        return asyncio.run(_pipeline_main(settings, sock))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_pipeline_main(settings, sock))


async def _pipeline_main(settings: Settings, sock: socket.socket) -> int:
    from verbal.logs import configure as configure_logs
    from verbal.runtime import Runtime

    configure_logs(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    journal = ForwardedJournal()
    runtime = Runtime(settings, pipeline_process=True, journal_backend=journal)
    end = ApiProcess(runtime, journal)
    await _connect(sock, end.link)
    await end.go.wait()
    try:
        await runtime.start()
    except Exception as exc:
        log.error("the pipeline process could not start: %s", exc)
        await runtime.close()
        return 1
    freeze_heap()
    end.started()
    await stop.wait()
    end.stopping = True
    await runtime.stop()
    return 0


class ForwardedJournal:
    """The pipeline process's journal backend (`verbal/store/journal.py`): each tick goes
    to the API process, which writes it (see the module doc); `run` returns once that
    transaction committed. Rows that fail are logged by the API process's journal, so none
    are reported back."""

    def __init__(self) -> None:
        self.link: _Link | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._numbers = itertools.count(1)

    async def run(self, groups: list[tuple[Statement, list[Params]]], careful: bool) -> list[int]:
        if self.link is None or self.link.transport is None:
            raise ConnectionError("the API process, which writes the journal, is gone")
        number = next(self._numbers)
        committed = self._waiting[number] = asyncio.get_running_loop().create_future()
        # Each statement by its fields, plain values: pickling the Statement objects
        # themselves cost 2.6 times as much as the whole tick does this way.
        specs = [(_spec(statement), rows) for statement, rows in groups]
        self.link.send(JOURNAL, pickle.dumps((number, specs), pickle.HIGHEST_PROTOCOL))
        try:
            await committed
        finally:
            self._waiting.pop(number, None)
        return []

    def lost(self) -> None:
        """The API process is gone: no tick in flight will ever be answered."""
        for committed in self._waiting.values():
            if not committed.done():
                committed.set_exception(ConnectionError("the API process is gone"))

    def answered(self, payload: bytes) -> None:
        number, error = pickle.loads(payload)
        committed = self._waiting.get(number)
        if committed is None or committed.done():
            return
        if error is None:
            committed.set_result(None)
        else:
            committed.set_exception(ForwardedWriteFailed(error))


StatementSpec = tuple[str, int, "str | None", tuple[str, ...]]


def _spec(statement: Statement) -> StatementSpec:
    return (statement.sql, statement.order, statement.key, statement.times)


@functools.lru_cache(maxsize=512)
def _statement(spec: StatementSpec) -> Statement:
    """The statement a forwarded tick names: one object per shape, so that the journal
    groups the pipeline's rows with its own."""
    from verbal.store.journal import Statement

    sql, order, key, times = spec
    return Statement(sql, order, key, times)


class ForwardedWriteFailed(RuntimeError):
    """The API process could not commit a tick of the pipeline's journal."""


class ApiProcess:
    """The API process, as the pipeline process sees it."""

    def __init__(self, runtime: Runtime, journal: ForwardedJournal) -> None:
        self._runtime = runtime
        self._journal = journal
        self.link = _Link(self._on_frame, self._on_lost)
        journal.link = self.link
        self.go = asyncio.Event()
        self._waiting: list[tuple[list[MessageRecord], dict[int, str]]] = []
        self._running = False
        self._reported = -1
        self._taken_since_report = False
        self._reporter: asyncio.Task[None] | None = None
        self.stopping = False  # asked to stop: the end of the link is expected

    def started(self) -> None:
        self._running = True
        for records, sids in self._waiting:
            self._runtime.messaging.take_over(records, sids)
        self._waiting.clear()
        self._reporter = asyncio.create_task(self._report_backlog(), name="backlog-report")
        self.link.send(READY)

    async def _report_backlog(self) -> None:
        while True:
            backlog = self._runtime.messaging.backlog
            # Also when unchanged but messages came since: the API process counts what it
            # handed over until a report includes it, and a message taken and finished
            # between two reports leaves the figure as it was.
            if backlog != self._reported or self._taken_since_report:
                self._reported = backlog
                self._taken_since_report = False
                self.link.send(BACKLOG, str(backlog).encode())
            await asyncio.sleep(BACKLOG_INTERVAL_SECONDS)

    def _on_frame(self, kind: bytes, payload: bytes) -> None:
        if kind == JOURNALED:
            self._journal.answered(payload)
        elif kind == HAND_OVER:
            self._taken_since_report = True
            values, sids = pickle.loads(payload)  # from our own parent process
            records = [MessageRecord._make(fields) for fields in values]
            if self._running:
                self._runtime.messaging.take_over(records, sids)
            else:
                self._waiting.append((records, sids))
        elif kind == WAKE:
            self._runtime.wake_workers()
        elif kind == METRICS:
            from prometheus_client import generate_latest

            self.link.send(METRICS_TEXT, generate_latest())
        elif kind == GO:
            self.go.set()

    def _on_lost(self) -> None:
        self._journal.lost()
        if self.stopping:
            return
        # The API process is gone, crashed or killed: so is the server. What this process
        # has not written is recovered by the next start, as after a kill -9.
        log.error("the API process ended; the pipeline process exits")
        _exit(1)


def hold_pipeline_lock(database: str, wait: float = PIPELINE_LOCK_WAIT_SECONDS) -> IO[bytes]:
    """The pipeline's lock beside a SQLite file, waiting up to `wait` seconds for a previous
    pipeline process (whose API process died a moment ago) to exit."""
    lock = open(f"{database}.pipeline.lock", "wb")  # noqa: SIM115 - held for the process's life
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise TimeoutError(
                    f"another pipeline process still holds {database}.pipeline.lock"
                ) from None
            time.sleep(0.05)


def merge_metrics(own: bytes, pipeline: bytes) -> bytes:
    """One exposition from the two processes' own: each sample labelled with the process
    it comes from (`process="api"` or `"pipeline"`), families merged."""
    if not pipeline:
        return own
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Any] = {}
    order: list[str] = []
    for text, process in ((own, "api"), (pipeline, "pipeline")):
        for family in text_string_to_metric_families(text.decode()):
            samples = [
                sample._replace(labels={**sample.labels, "process": process})
                for sample in family.samples
            ]
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = family
                merged.samples = []
                order.append(family.name)
            merged.samples.extend(samples)
    return _render([families[name] for name in order])


def _render(families: list[Any]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    class Merged:
        def collect(self) -> list[Any]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())  # type: ignore[arg-type]
    return generate_latest(registry)
