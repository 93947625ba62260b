"""A hot read of one row, compiled once, that skips SQLAlchemy's machinery on SQLite.

Why: a session's step starts with one query (its inbound text and app, or the session row).
Through an ORM session that query cost about 0.5 ms of CPU, of which SQLite's part was a
fifth: the rest was the session, the pool checkout and return, and the greenlet that
SQLAlchemy's asyncio facade runs every statement in, about a sixth of the pipeline process
in the profile of `bench/app_round_trip.py`. On SQLite with the inline driver
(`_sqlite_inline.py`) the statement, compiled once by the engine's own dialect, runs on the
connection at once when no transaction holds it, outside a transaction (a single SELECT is a
consistent snapshot by itself), and its columns are converted by the same type processors
SQLAlchemy would apply. Otherwise (PostgreSQL, a connection in use) it goes through a read
session as before, so both ways give the same values.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from verbal.store._sqlite_inline import NotNow
from verbal.store.database import inline_connection


class FirstRow:
    """`await read(**params)`: the statement's first row (attributes by column key), or None."""

    def __init__(
        self,
        statement: Select[Any],
        engine: AsyncEngine,
        reads: async_sessionmaker[AsyncSession],
    ) -> None:
        self._statement = statement
        self._engine = engine
        self._reads = reads
        self._inline: _Compiled | None = None
        if engine.dialect.name == "sqlite":
            self._inline = _Compiled(statement, engine)

    async def __call__(self, **params: Any) -> Any:
        inline = inline_connection(self._engine) if self._inline is not None else None
        if inline is not None:
            compiled = self._inline
            assert compiled is not None
            try:
                return inline.read_at_once(lambda connection: compiled.first(connection, params))
            except NotNow:
                pass
        async with self._reads() as session:
            return (await session.execute(self._statement, params)).first()


class _Compiled:
    """The statement as the engine's dialect compiles it, with its bind and result
    processors, for the sqlite3 connection underneath."""

    def __init__(self, statement: Select[Any], engine: AsyncEngine) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        binds = compiled._bind_processors
        # Literal values in the statement (states, LIMIT) are bound too: theirs are fixed.
        fixed = compiled.construct_params(_check=False)
        self.names = compiled.positiontup or []
        self.fixed = {name: _bound(binds.get(name), fixed.get(name)) for name in self.names}
        self.binds = binds
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc]
        self.results: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(columns):
            process = column.type._cached_result_processor(dialect, None)
            if process is not None:
                self.results.append((index, process))

    def first(self, connection: sqlite3.Connection, params: dict[str, Any]) -> Any:
        values = [
            _bound(self.binds.get(name), params[name]) if name in params else self.fixed[name]
            for name in self.names
        ]
        cursor = connection.execute(self.sql, values)
        try:
            rows = cursor.fetchall()  # to the end: the statement's snapshot ends with it
        finally:
            cursor.close()
        if not rows:
            return None
        row = list(rows[0])
        for index, process in self.results:
            row[index] = process(row[index])
        return self.row(*row)


def _bound(process: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if process is None else process(value)
