"""A stand-in for `aiosqlite.Connection` that runs each SQLite call on the event-loop thread.

Why replace aiosqlite: measured with `bench/sqlite_transactions.py`, SQLAlchemy's aiosqlite
adapter ran a trivial `BEGIN IMMEDIATE; select 1; COMMIT` about 750 times a second and a
bare `select 1` about 2,400 times, while the stdlib sqlite3 module runs about 60,000 such
transactions a second. The time goes into the hand-off, not into SQLite: aiosqlite keeps the
sqlite3 connection in a worker thread, and every call SQLAlchemy's adapter awaits (open a
cursor, execute, fetch, close it, commit: several per statement) is a queue put, a thread
wake-up and a future resolved back on the loop. A message costs about 15 transactions, so
the hand-off held the whole pipeline to 30-40 messages a second. Inline, the same bench runs
2-4 times faster; what remains is SQLAlchemy's own cost (the ORM, and the greenlet and task
of its asyncio facade), not SQLite's.

Why blocking the loop is acceptable here: with WAL and synchronous=NORMAL a statement or a
COMMIT touches only the page cache and the WAL file and does not wait for fsync (checkpoints
aside, below); our statements take microseconds, less than the thread hand-off they replace.
The engine keeps a single connection, so this process never ran two statements at once
anyway; the worker thread only let *other* coroutines run during those microseconds.

The one long wait is another process (the `verbal` CLI, say) holding the write lock: with the
driver's busy handler the loop would stall for up to the whole busy timeout. So the connection
is opened with a busy timeout of a few milliseconds (`INLINE_BUSY_TIMEOUT_MS`, enough for a
competing commit to finish) and a statement that still gets SQLITE_BUSY is retried after an
`asyncio.sleep`, with the sleeps growing to `MAX_RETRY_DELAY`, until the caller's patience
(the old 10 s busy timeout) runs out. The loop is then never blocked for more than a few
milliseconds by lock contention, at the price of noticing a released lock up to
`MAX_RETRY_DELAY` late. Only what SQLite says is safe to retry is retried: a statement that
ran outside an explicit transaction (BEGIN IMMEDIATE among them) and COMMIT. Inside a
transaction SQLITE_BUSY is raised, since SQLite asks for a rollback there.

The other wait is fsync, which synchronous=NORMAL still does when the WAL is checkpointed
into the database file. SQLite's auto-checkpoint runs inside a COMMIT every 1,000 WAL pages
and took 12-30 ms on a virtual disk (far more on an SD card), stalling the whole server, so
the inline connection turns it off and, after `CHECKPOINT_EVERY_WRITES` writing transactions,
runs the same PASSIVE checkpoint in a worker thread on a connection of its own. It waits for
the checkpoint before its next BEGIN: checkpointing while it kept writing would never catch
up, and the WAL, never restarted, would grow without bound. What remains on the loop is the
first commit after each checkpoint, which syncs the restarted WAL's header (one small fsync).

What still blocks the loop: statements that are slow in themselves (a migration that copies a
table, a large scan) and that header sync.

The journal's transactions (`journal.py`) skip SQLAlchemy altogether when they can: its pool
checkout and return, through a greenlet and a task of their own, cost about 0.2 ms a
transaction, as much as a tick's statements. `InlineConnection.transaction_at_once` runs one
whole transaction without yielding, when the connection has none open (a session that holds
it between transactions is not disturbed: it cannot run while this runs) and SQLite grants
the write lock at once; otherwise the caller takes the ordinary way through the pool.

Datetimes are bound as SQLAlchemy stores them (`sqlite_time`), by an adapter registered with
the sqlite3 module, so that rows need not be copied to convert them.

The surface is what SQLAlchemy's aiosqlite adapter uses on `aiosqlite.Connection` and its
cursors, checked against SQLAlchemy 2.0.30 (`await connection.cursor()`, `connection._tx`
and `_conn` to set isolation_level), 2.0.38 and 2.1 (`cursor.__aenter__`, `stop()` to
terminate). Errors are the stdlib sqlite3 exceptions, which aiosqlite re-exports and the
dialect maps.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, TypeVar

_T = TypeVar("_T")

SQLITE_BUSY = 5  # primary result code; extended codes (BUSY_RECOVERY, ...) share the low byte
INLINE_BUSY_TIMEOUT_MS = 5
FIRST_RETRY_DELAY = 0.001
MAX_RETRY_DELAY = 0.025
# Our write transactions dirty a few pages each (a row and its index entries), so this is
# about the 1,000 WAL pages after which SQLite would checkpoint by itself.
CHECKPOINT_EVERY_WRITES = 250

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)
def sqlite_time(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: naive UTC, ISO text with microseconds
    (a naive value is taken to be UTC already).

    Cached: the rows of a tick share their times (a message's creation and update, its
    timeline entry), and the conversion was a tenth of the journal's cost."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


# Process-wide, as sqlite3 adapters are: SQLAlchemy's own DateTime columns convert before
# binding and never reach it; raw statements (the journal's) bind datetimes through it, in
# the same format, instead of the sqlite3 default (ISO with an offset, deprecated in 3.12).
sqlite3.register_adapter(datetime, sqlite_time)


class NotNow(Exception):
    """`transaction_at_once` could not run at once: take the ordinary way."""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_BUSY


def _checkpoint(path: str) -> None:
    """Copy the WAL into the database file, from a worker thread and a connection of its own."""
    try:
        with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as error:
        # Nothing is lost: the frames stay in the WAL and the next checkpoint copies them.
        log.warning("SQLite checkpoint of %s failed: %s", path, error)


class _RunNow:
    """Stands in for aiosqlite's request queue, which the SQLAlchemy adapter uses directly
    (`_tx.put_nowait((future, function))`) to set `isolation_level`: run it at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(result)


class InlineCursor:
    """An `aiosqlite.Cursor` look-alike over a sqlite3 cursor."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor, params = self._cursor, () if parameters is None else parameters
        await self._connection._statement(lambda: cursor.execute(sql, params))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        # Never retried: outside a transaction each parameter set commits on its own, so a
        # failure half-way cannot be repeated safely.
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[Any]:
        while (row := self._cursor.fetchone()) is not None:
            yield row

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _OpenCursor:
    """What `connection.cursor()` returns: awaited by SQLAlchemy 2.0.30, entered with
    `__aenter__` by 2.0.38 and later, like aiosqlite's own context-manager result."""

    def __init__(self, cursor: InlineCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._cursor
        yield  # a generator that finishes at once: nothing to wait for

    async def __aenter__(self) -> InlineCursor:
        return self._cursor

    async def __aexit__(self, *exc_info: object) -> None:
        await self._cursor.close()


class InlineConnection:
    """An `aiosqlite.Connection` look-alike whose coroutines call sqlite3 directly."""

    def __init__(
        self, connection: sqlite3.Connection, *, busy_patience: float, checkpoint_path: str
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._busy_patience = busy_patience
        self._tx = _RunNow()
        self._checkpoint_path = checkpoint_path  # "" for a database without a file
        self._changes_seen = connection.total_changes
        self._writes_since_checkpoint = 0

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            # aiosqlite's words: the SQLAlchemy dialect treats them as a disconnect.
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def cursor(self) -> _OpenCursor:
        return _OpenCursor(InlineCursor(self, self._conn.cursor()))

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await InlineCursor(self, self._conn.cursor()).execute(sql, parameters)

    async def commit(self) -> None:
        connection = self._conn
        # A COMMIT refused with SQLITE_BUSY leaves the transaction open and may be repeated.
        await self._retry_busy(connection.commit, lambda: connection.in_transaction)
        self._count_write(connection)

    async def rollback(self) -> None:
        self._conn.rollback()

    def transaction_at_once(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` in one IMMEDIATE transaction and commit, without yielding to the loop;
        raise `NotNow` (with nothing done) when that cannot be: the connection is closed or
        in a transaction, a checkpoint is due, or the write lock is taken."""
        connection = self._connection
        if connection is None or connection.in_transaction or self._checkpoint_due:
            raise NotNow
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                raise NotNow from None
            raise
        try:
            result = work(connection)
            connection.commit()
        except BaseException as error:
            if connection.in_transaction:
                connection.rollback()
            if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
                raise NotNow from None
            raise
        self._count_write(connection)
        return result

    def read_at_once(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work`, which only reads, without yielding to the loop and outside any
        explicit transaction (each statement is then its own consistent snapshot); raise
        `NotNow` when that cannot be: the connection is closed, or in a transaction that a
        session holds between its awaits, or the file is busy. `work` must read its
        statements to the end (`fetchall`), or SQLite keeps their read transactions open."""
        connection = self._connection
        if connection is None or connection.in_transaction:
            raise NotNow
        try:
            return work(connection)
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                raise NotNow from None
            raise

    def _count_write(self, connection: sqlite3.Connection) -> None:
        """After a commit: one more writing transaction towards the next checkpoint."""
        if connection.total_changes != self._changes_seen:
            self._changes_seen = connection.total_changes
            self._writes_since_checkpoint += 1

    @property
    def _checkpoint_due(self) -> bool:
        return bool(self._checkpoint_path) and (
            self._writes_since_checkpoint >= CHECKPOINT_EVERY_WRITES
        )

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now; SQLAlchemy calls this to terminate a connection outside the loop."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _statement(self, run: Callable[[], _T]) -> _T:
        connection = self._conn
        if connection.in_transaction:
            return run()  # inside a transaction SQLITE_BUSY is not ours to retry
        # Outside a transaction the statement is, in practice, our BEGIN IMMEDIATE. Give
        # other tasks their turn here, once per transaction: nothing else in a transaction
        # suspends now, and a coroutine running transactions in a loop would otherwise starve
        # the rest of the server (with aiosqlite every call was such a turn). Before BEGIN,
        # a cancellation arriving here leaves nothing half-done.
        if self._checkpoint_due:
            self._writes_since_checkpoint = 0
            await asyncio.to_thread(_checkpoint, self._checkpoint_path)
        else:
            await asyncio.sleep(0)
        # A statement that met SQLITE_BUSY here has done nothing; but if the driver opened a
        # transaction implicitly before failing, the retry rule no longer holds.
        return await self._retry_busy(run, lambda: not connection.in_transaction)

    async def _retry_busy(self, run: Callable[[], _T], still_retryable: Callable[[], bool]) -> _T:
        try:
            return run()
        except sqlite3.OperationalError as error:
            if not (_is_busy(error) and still_retryable()):
                raise
        deadline = time.monotonic() + self._busy_patience
        delay = FIRST_RETRY_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                return run()
            except sqlite3.OperationalError as error:
                if not (_is_busy(error) and still_retryable()) or time.monotonic() >= deadline:
                    raise
            delay = min(delay * 2, MAX_RETRY_DELAY)


async def connect(database: str, *, busy_patience: float, **kwargs: Any) -> InlineConnection:
    """Open `database` like `aiosqlite.connect` would, taking sqlite3.connect's arguments.

    `busy_patience` is how long, in seconds, a statement keeps retrying SQLITE_BUSY.
    """
    kwargs["timeout"] = INLINE_BUSY_TIMEOUT_MS / 1000
    # The connection is made and used on the loop thread; SQLAlchemy may still close it from
    # a garbage-collection hook elsewhere, and the single-connection pool serialises use.
    kwargs["check_same_thread"] = False
    connection = sqlite3.connect(database, **kwargs)
    try:
        # We checkpoint off the loop instead (see the module's docstring).
        connection.execute("PRAGMA wal_autocheckpoint=0")
        [(_, _, path)] = connection.execute("PRAGMA main.database_list")  # "" when in memory
    except BaseException:
        connection.close()
        raise
    return InlineConnection(connection, busy_patience=busy_patience, checkpoint_path=path)
