"""The journal: one writer per process, many intents per transaction.

Why: the pipeline used to record each step of each message in a transaction of its own,
through the ORM, about fifty statements and more than one commit per message
(`bench/results.md`). Here coroutines hand the journal *intents* (a statement shape and its
parameters) and go on; the journal collects what arrives during one turn of the event loop,
then writes it as one transaction: one `executemany` per statement shape, one COMMIT. A
caller that must know its write is durable (the API before answering 201) awaits the future
`write` returns; nobody else waits.

Order: within a tick, shapes run by their `order` (rows are inserted before the rows that
refer to them), and a shape's rows in the order they were written. A shape with a `key`
keeps only the last row written for each key in a tick (the newest state of a message
replaces the older one). Across ticks the order is the order of `write` calls, so what is on
disk after a crash is always a state the process passed through.

Failures: an error the database may recover from (locked, connection lost) keeps the tick's
intents and tries again with backoff; any other error rolls back and replays the tick one
intent at a time, each in a savepoint, so one bad row fails its own future and not its
neighbours'.

The statements go to the driver directly (sqlite3 on the event loop, through the engine's
single pooled connection, or asyncpg), not through SQLAlchemy: its statement layers cost
several times what SQLite did with the same statement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from verbal.store._sqlite_inline import NotNow
from verbal.store.database import inline_connection

log = logging.getLogger("verbal.store.journal")

Params = Mapping[str, Any]
_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
# Errors after which writing the same intents again may work: keep them and retry.
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0


@dataclass(frozen=True)
class Statement:
    """One statement shape, written with named parameters (`:name`).

    `order` places it in a tick (lower first); `key` names the parameter that identifies a
    row, so that only the last write per key in a tick is executed.
    """

    sql: str
    order: int
    key: str | None = None
    # The parameters that hold datetimes (aware, UTC): stored as SQLAlchemy stores them.
    times: tuple[str, ...] = ()
    names: tuple[str, ...] = field(init=False)
    positional_sql: str = field(init=False)

    def __post_init__(self) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        object.__setattr__(self, "positional_sql", _NAMED.sub(number, self.sql))
        object.__setattr__(self, "names", tuple(names))


class Backend(Protocol):
    """Runs a tick's statements as one transaction."""

    async def run(self, groups: list[tuple[Statement, list[Params]]], careful: bool) -> list[int]:
        """Execute each group with executemany and commit; return the indexes (in the
        flattened order) of rows that failed, which only `careful` runs may report."""
        ...


@dataclass(slots=True)
class JournalStats:
    """What the journal has done since it started, for benchmarks and tests."""

    transactions: int = 0
    statements: int = 0
    rows: int = 0
    retries: int = 0


@dataclass(eq=False, slots=True)
class _Tick:
    intents: list[tuple[Statement, Params]] = field(default_factory=list)
    committed: asyncio.Future[None] | None = None


class Journal:
    def __init__(self, backend: Backend, *, max_rows: int = 5000) -> None:
        self._backend = backend
        self._max_rows = max_rows
        self._next = _Tick()
        self._flushing: asyncio.Task[None] | None = None
        self._scheduled = False
        self.stats = JournalStats()
        self._closed = False

    def write(self, statement: Statement, params: Params) -> asyncio.Future[None]:
        """Record `params` with `statement` in the next transaction; the future resolves
        when it has committed (or holds the error that kept it from committing). Every write
        of a tick shares it: a caller that may be cancelled awaits it through
        `asyncio.shield`, or its cancellation cancels everyone's."""
        if self._closed:
            raise RuntimeError("the journal is closed")
        self._next.intents.append((statement, params))
        return self._scheduled_tick()

    def write_many(self, intents: Iterable[tuple[Statement, Params]]) -> asyncio.Future[None]:
        """`write` for each intent, in order, into the same transaction; the future of it."""
        if self._closed:
            raise RuntimeError("the journal is closed")
        before = len(self._next.intents)
        self._next.intents.extend(intents)
        if len(self._next.intents) == before:
            return self.flushed()
        return self._scheduled_tick()

    def _scheduled_tick(self) -> asyncio.Future[None]:
        """The next tick's commit, with the tick scheduled (it has intents)."""
        tick = self._next
        if tick.committed is None:
            tick.committed = asyncio.get_running_loop().create_future()
            # Nobody has to await it; retrieve its error so none is reported as lost.
            tick.committed.add_done_callback(_retrieve)
        self._schedule()
        return tick.committed

    def flushed(self) -> asyncio.Future[None]:
        """A future that resolves once everything written so far has committed."""
        if self._next.committed is not None:
            return self._next.committed
        done = asyncio.get_running_loop().create_future()
        if self._flushing is None:
            done.set_result(None)
        else:
            self._flushing.add_done_callback(lambda _: done.done() or done.set_result(None))
        return done

    @property
    def pending(self) -> int:
        return len(self._next.intents)

    def _schedule(self) -> None:
        if self._scheduled or self._flushing is not None:
            return
        self._scheduled = True
        # The rest of this loop turn adds to the same tick.
        asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._flushing is not None or not self._next.intents:
            return
        tick, self._next = self._next, _Tick()
        self._flushing = asyncio.get_running_loop().create_task(
            self._flush(tick), name="journal-flush"
        )

    async def _flush(self, tick: _Tick) -> None:
        try:
            await self._write_tick(tick)
        finally:
            self._flushing = None
            if self._next.intents:
                self._start()

    async def _write_tick(self, tick: _Tick) -> None:
        assert tick.committed is not None
        delay = RETRY_FIRST_SECONDS
        while True:
            groups = _grouped(tick.intents)
            try:
                failed = await self._backend.run(groups, careful=False)
            except BaseException as error:
                if isinstance(error, asyncio.CancelledError):
                    tick.committed.cancel()
                    raise
                if _retryable(error) and not self._closed:
                    self.stats.retries += 1
                    log.warning("journal: writing failed (%s); retrying in %.2fs", error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    continue
                log.error("journal: a tick failed (%s); writing its rows one by one", error)
                try:
                    failed = await self._backend.run(groups, careful=True)
                except BaseException as second:
                    if not tick.committed.done():
                        tick.committed.set_exception(second)
                    if isinstance(second, asyncio.CancelledError):
                        raise
                    return
                if failed:
                    log.error("journal: %d rows could not be written", len(failed))
            self._count(groups)
            # An awaiter that was cancelled cancels the future it awaited (a caller that may
            # be cancelled awaits it through asyncio.shield); the rows are written all the same.
            if not tick.committed.done():
                tick.committed.set_result(None)
            return

    def _count(self, groups: list[tuple[Statement, list[Params]]]) -> None:
        self.stats.transactions += 1
        self.stats.statements += len(groups)
        self.stats.rows += sum(len(rows) for _, rows in groups)

    async def close(self) -> None:
        """Write what is pending, then refuse further writes."""
        while self._flushing is not None or self._next.intents:
            if self._flushing is None:
                self._start()
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
        self._closed = True


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _grouped(intents: list[tuple[Statement, Params]]) -> list[tuple[Statement, list[Params]]]:
    """The tick's intents as one list of rows per statement, in statement order; for keyed
    statements only the last row per key, at the place of its last write."""
    by_statement: dict[Statement, dict[Any, Params] | list[Params]] = {}
    for statement, params in intents:
        rows = by_statement.get(statement)
        if statement.key is None:
            if rows is None:
                rows = by_statement[statement] = []
            rows.append(params)  # type: ignore[union-attr]
        else:
            if rows is None:
                rows = by_statement[statement] = {}
            key = params[statement.key]
            rows.pop(key, None)  # type: ignore[call-arg]
            rows[key] = params  # type: ignore[call-overload]
    ordered = sorted(by_statement.items(), key=lambda item: item[0].order)
    return [(s, list(rows.values()) if isinstance(rows, dict) else rows) for s, rows in ordered]


def _retryable(error: BaseException) -> bool:
    import sqlite3

    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error) or "busy" in str(error)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(
        error,
        (
            OSError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TooManyConnectionsError,
            asyncpg.exceptions.SerializationError,
            asyncpg.exceptions.DeadlockDetectedError,
        ),
    )


# -- values -----------------------------------------------------------------------------------


def postgres_time(value: datetime) -> datetime:
    """A datetime for a PostgreSQL `timestamp without time zone`: naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _with_times(
    statement: Statement, rows: list[Params], convert: Callable[[datetime], Any]
) -> list[Params]:
    """`rows` with their datetime parameters converted (booleans and the rest need nothing:
    both drivers take Python's)."""
    if not statement.times:
        return rows
    converted = []
    for row in rows:
        copy = dict(row)
        for name in statement.times:
            value = copy[name]
            if value is not None:
                copy[name] = convert(value)
        converted.append(copy)
    return converted


async def execute_in(session: Any, statement: Statement, rows: list[Params]) -> None:
    """Run `statement` inside a caller's SQLAlchemy transaction (its writes must commit with
    the caller's own), with the values adapted as the journal adapts them (on SQLite, the
    sqlite3 module's datetime adapter does it: `_sqlite_inline.sqlite_time`)."""
    from sqlalchemy import text

    if session.bind.dialect.name != "sqlite":
        rows = _with_times(statement, rows, postgres_time)
    await session.execute(text(statement.sql), rows)


def json_text(value: Any) -> str:
    """A JSON column's value, serialised as SQLAlchemy's JSON type does."""
    return json.dumps(value)


# -- backends ---------------------------------------------------------------------------------


class SqliteBackend:
    """Ticks on the engine's single connection (`database.py`): at once when it is free
    (`InlineConnection.transaction_at_once`), else waiting for it like any other
    transaction; either way on the loop without yielding until COMMIT. Datetimes are bound
    by the sqlite3 adapter (`_sqlite_inline.sqlite_time`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, groups: list[tuple[Statement, list[Params]]], careful: bool) -> list[int]:
        inline = inline_connection(self._engine)
        if inline is not None and not careful:
            try:
                inline.transaction_at_once(lambda sqlite: _execute_groups(sqlite, groups))
                return []
            except NotNow:
                pass
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            inline = raw.driver_connection
            await inline.execute("BEGIN IMMEDIATE")
            sqlite = inline._conn
            failed: list[int] = []
            try:
                if careful:
                    failed = _execute_one_by_one(sqlite, groups)
                else:
                    _execute_groups(sqlite, groups)
                await inline.commit()
            except BaseException:
                if sqlite.in_transaction:
                    sqlite.rollback()
                raise
            return failed


def _execute_groups(sqlite: Any, groups: list[tuple[Statement, list[Params]]]) -> None:
    for statement, rows in groups:
        sqlite.executemany(statement.sql, rows)


def _execute_one_by_one(sqlite: Any, groups: list[tuple[Statement, list[Params]]]) -> list[int]:
    """Each row in a savepoint of its own; the indexes (in the flattened order) of those
    that failed, rolled back alone."""
    failed: list[int] = []
    index = 0
    for statement, rows in groups:
        for row in rows:
            sqlite.execute("SAVEPOINT journal_row")
            try:
                sqlite.execute(statement.sql, row)
            except Exception as error:
                sqlite.execute("ROLLBACK TO journal_row")
                log.error("journal: row %s of %r failed: %s", row, statement.sql, error)
                failed.append(index)
            sqlite.execute("RELEASE journal_row")
            index += 1
    return failed


class PostgresBackend:
    """Ticks on a pooled asyncpg connection: one round trip per statement shape."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, groups: list[tuple[Statement, list[Params]]], careful: bool) -> list[int]:
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            pg = raw.driver_connection
            failed: list[int] = []
            async with pg.transaction():
                index = 0
                for statement, rows in groups:
                    values = [
                        tuple(row[name] for name in statement.names)
                        for row in _with_times(statement, rows, postgres_time)
                    ]
                    if not careful:
                        await pg.executemany(statement.positional_sql, values)
                        continue
                    for row in values:
                        try:
                            async with pg.transaction():
                                await pg.execute(statement.positional_sql, *row)
                        except Exception as error:
                            log.error("journal: row of %r failed: %s", statement.sql, error)
                            failed.append(index)
                        index += 1
            return failed


def backend_for(engine: AsyncEngine) -> Backend:
    if engine.dialect.name == "sqlite":
        return SqliteBackend(engine)
    return PostgresBackend(engine)
