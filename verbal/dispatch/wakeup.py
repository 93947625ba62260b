"""Wake idle workers on every node when jobs are added (PostgreSQL LISTEN/NOTIFY).

A trigger on the jobs table (migration 0004) notifies channel `verbal_jobs` whenever a
transaction that added jobs commits. Each worker process keeps one connection listening on
it and wakes its dispatcher, so nobody polls for new work. If the connection drops, the
listener reconnects with backoff; meanwhile the dispatcher's slow safety poll still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from verbal.dispatch.backoff import backoff_delay
from verbal.tasks import cancel_and_wait

if TYPE_CHECKING:
    import asyncpg

CHANNEL = "verbal_jobs"
log = logging.getLogger("verbal.dispatch")


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style DSN asyncpg takes, from a SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JobNotifications:
    def __init__(self, database_url: str, wake: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="job-notifications")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _listen(self) -> None:
        # Imported here, not at module level: only PostgreSQL nodes listen, and asyncpg would
        # add about 2.5 MiB to every SQLite process.
        import asyncpg

        failures = 0
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("cannot listen for new jobs (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            try:
                failures = 0
                await self._serve(connection)
                log.warning("lost the job notification connection; reconnecting")
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)

    async def _serve(self, connection: asyncpg.Connection) -> None:
        """Listen on `connection` until it is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        await connection.add_listener(CHANNEL, lambda *_: self._wake())
        self.listening.set()
        # Jobs added while nobody listened would otherwise wait for the safety poll.
        self._wake()
        await lost.wait()
