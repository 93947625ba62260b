"""Named leases in the shared database: singletons among worker processes.

Some things must run in one worker at a time: a carrier whose SMSC allows a fixed number of
binds, say. Each worker asks for the lease; the one that gets it renews it well within
`seconds`; a holder that dies stops renewing, and once its lease has run out the next
worker to ask takes over. Taking and renewing are one statement, atomic on SQLite and
PostgreSQL alike: an upsert that only succeeds where the lease is free, expired or ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.models import Lease

Clock = Callable[[], float]


class Leases:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        seconds: float,
        clock: Clock = time.time,
    ) -> None:
        self._sessions = sessions
        self.owner = owner
        self.seconds = seconds
        self._clock = clock

    async def acquire(self, name: str) -> bool:
        """Take or renew lease `name`; True while this process holds it."""
        now = self._clock()
        async with self._sessions.begin() as session:
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            statement = insert(Lease).values(
                name=name, owner=self.owner, expires=now + self.seconds
            )
            held = await session.scalar(
                statement.on_conflict_do_update(
                    index_elements=[Lease.name],
                    set_={"owner": self.owner, "expires": now + self.seconds},
                    where=or_(Lease.owner == self.owner, Lease.expires < now),
                ).returning(Lease.owner)
            )
        return held == self.owner

    async def release(self, name: str) -> None:
        """Give lease `name` up at once (a clean shutdown), if this process holds it."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(Lease).where(Lease.name == name, Lease.owner == self.owner)
            )
