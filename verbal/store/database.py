"""Connecting to the database and keeping its schema current.

SQLite (the default) runs in WAL mode on a single pooled connection: SQLite allows one
writer at a time anyway, and funnelling this process's transactions through one connection
means they queue in Python instead of failing with "database is locked". Each transaction
starts with BEGIN IMMEDIATE so that another process (the CLI, say) waits on `busy_timeout`
rather than hitting a lock upgrade deadlock.

That connection runs its SQLite calls on the event-loop thread (`_sqlite_inline`) instead of
aiosqlite's worker thread, whose hand-off per call capped us at a few hundred transactions a
second; that module says why blocking the loop is safe here and how lock waits avoid it.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

if TYPE_CHECKING:
    from alembic.config import Config

from verbal.store import _sqlite_inline
from verbal.store.group_commit import GroupCommitSessions

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
DEFAULT_GROUP_COMMIT = 64


def normalize_url(url: str) -> str:
    """Accept the URLs people write (`postgresql://`, `sqlite:///`) and pick async drivers."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, inline_sqlite: bool = True, pool_size: int = 10) -> AsyncEngine:
    """An engine for `url`; `inline_sqlite=False` keeps aiosqlite's worker thread (for
    comparison in `bench/sqlite_transactions.py`). `pool_size` bounds a PostgreSQL pool (as
    many again may open under bursts); every node counts against the server's
    `max_connections`."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )

    inline = inline_sqlite and make_url(url).get_driver_name() == "aiosqlite"
    options: dict[str, Any] = {}
    if inline:

        async def connect() -> _sqlite_inline.InlineConnection:
            # The URL's file name and sqlite3 arguments, as the dialect would pass them on.
            args, kwargs = engine.sync_engine.dialect.create_connect_args(engine.sync_engine.url)
            connection = await _sqlite_inline.connect(
                *args, busy_patience=SQLITE_BUSY_TIMEOUT_MS / 1000, **kwargs
            )
            _inline_connections[engine.sync_engine] = connection
            return connection

        options["async_creator"] = connect
    # The pool is named because SQLAlchemy before 2.0.38 defaulted SQLite files to NullPool.
    engine = create_async_engine(
        url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, **options
    )
    # The inline connection waits out a locked database in short steps that yield to the
    # loop, up to SQLITE_BUSY_TIMEOUT_MS in all; SQLite's own busy handler would block it.
    busy_timeout_ms = _sqlite_inline.INLINE_BUSY_TIMEOUT_MS if inline else SQLITE_BUSY_TIMEOUT_MS

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps committed transactions across a process crash (kill -9); only an OS
        # crash or power loss could drop the last few, which FULL would also guard against.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# The connection each inline SQLite engine's pool holds now (it replaces one that failed).
_inline_connections: weakref.WeakKeyDictionary[Any, _sqlite_inline.InlineConnection] = (
    weakref.WeakKeyDictionary()
)


def inline_connection(engine: AsyncEngine) -> _sqlite_inline.InlineConnection | None:
    """The inline SQLite connection of `engine`'s pool, once it has opened one; for the
    journal's transactions that may run at once (`InlineConnection.transaction_at_once`)."""
    return _inline_connections.get(engine.sync_engine)


# Execution option of `read_sessions`' engine, read by the SQLite begin hook above.
_READ_ONLY = "verbal_read_only"


def read_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that only read. On SQLite their transactions begin DEFERRED rather than
    IMMEDIATE: a read then never takes the file's write lock, which every other process
    and transaction would wait for (in WAL mode readers and the writer do not block each
    other). A session of these that writes fails with SQLITE_BUSY under contention instead
    of waiting: use them for reads alone. PostgreSQL is unaffected."""
    return async_sessionmaker(
        engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
    )


def session_factory(
    engine: AsyncEngine, *, group_commit: int = DEFAULT_GROUP_COMMIT
) -> async_sessionmaker[AsyncSession]:
    """Sessions for `engine`. On SQLite, up to `group_commit` concurrent transactions share
    one commit (`group_commit.py`; 1 turns that off); PostgreSQL commits each on its own."""
    if engine.dialect.name == "sqlite" and group_commit > 1:
        return GroupCommitSessions(engine, max_batch=group_commit, expire_on_commit=False)
    return async_sessionmaker(engine, expire_on_commit=False)


# An arbitrary constant naming Verbal's migration lock among PostgreSQL advisory locks.
MIGRATION_LOCK = 0x5645_5242  # "VERB"


def alembic_config() -> Config:
    # Imported here, not at the top: Alembic and mako are about 10 MiB that a server needs
    # for a moment at start, and the forked pipeline process (`verbal/processes.py`), which
    # never migrates, should not carry them.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (run on every start)."""

    def upgrade(connection: Connection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several nodes may start at once: one migrates while the others wait here, then
            # find nothing left to do. The lock ends with the transaction.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await connection.run_sync(upgrade)
