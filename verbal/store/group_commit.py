"""Group commit: concurrent units of work share one SQLite transaction, taking turns.

Why: on SQLite the engine has a single connection (see `database.py`), so transactions
already run one after another, each paying for its own pool checkout, BEGIN IMMEDIATE,
COMMIT (a WAL append) and session set-up and tear-down. Measured with
`bench/sqlite_transactions.py`, that fixed cost is about 0.25 ms of the 0.28 ms a trivial
transaction takes, and a message passes through about ten transactions on its way from the
API to its last status callback. When several units of work are waiting for the connection,
`GroupCommitSessions.begin()` lets them run one after another inside one transaction and
commits once for all of them.

What a unit of work sees is what `async_sessionmaker.begin()` gives it: a session whose
writes are committed when the block ends without an exception, and rolled back when it
raises. Each unit runs inside a SAVEPOINT, so a unit that raises (a refused message, an
integrity error) undoes only its own writes and the others commit; a unit's block returns
only once the transaction holding its writes has committed, and raises if that commit
failed, so "committed" means the same as before. Units of one batch see each other's
writes, as they would have seen them committed one after another.

Nothing is held longer than before: a batch is committed as soon as no other unit is waiting
for its turn, or after `max_batch` units, and a unit that awaits something slow inside its
transaction stalls the others exactly as it stalled the single connection before.

Only for SQLite: on PostgreSQL transactions run concurrently on a pool of connections, and
units sharing a transaction would hold each other's row locks until the last one ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass(eq=False, slots=True)
class _Batch:
    session: AsyncSession
    committed: asyncio.Future[None]
    units: int = 0


class GroupCommitSessions(async_sessionmaker[AsyncSession]):
    """An `async_sessionmaker` whose `begin()` groups concurrent units of work into one
    transaction (see the module doc). Plain sessions (`sessions()`) are unchanged."""

    def __init__(self, bind: Any, *, max_batch: int, **options: Any) -> None:
        super().__init__(bind, **options)
        self._max_batch = max_batch
        self._turn = asyncio.Lock()
        self._waiting = 0  # units waiting for their turn: while there are any, don't commit
        self._batch: _Batch | None = None
        # Commit tasks, referenced until they end (the loop holds tasks only weakly).
        self._commits: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        self._waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1
        try:
            batch = self._batch or await self._open()
            savepoint = await batch.session.begin_nested()
            # What units leave in `info` for after the commit (jobs to wake for, messages
            # to admit) must go with a unit that rolls back.
            info = batch.session.sync_session.info
            info_before = dict(info)
        except BaseException:
            # An open batch must still be committed or handed on, or it would hold the
            # connection for good.
            self._end_turn(self._batch)
            raise
        try:
            yield batch.session
            await savepoint.commit()  # flushes the unit's writes: errors are its own
        except BaseException:
            if savepoint.is_active:
                await savepoint.rollback()
            info.clear()
            info.update(info_before)
            self._end_turn(batch)
            raise
        batch.units += 1
        self._end_turn(batch)
        # Shielded: a unit cancelled while waiting must not cancel the commit the others
        # wait for (the commit runs in a task of its own for the same reason).
        await asyncio.shield(batch.committed)

    async def _open(self) -> _Batch:
        session = self()
        try:
            await session.begin()
        except BaseException:
            await session.close()
            raise
        self._batch = _Batch(session, asyncio.get_running_loop().create_future())
        return self._batch

    def _end_turn(self, batch: _Batch | None) -> None:
        """Let the next unit in, or commit the batch if nobody is waiting or it is full."""
        if batch is None or (self._waiting and batch.units < self._max_batch):
            self._turn.release()
            return
        self._batch = None  # the turn stays taken until the commit is done
        task = asyncio.get_running_loop().create_task(self._commit(batch))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _commit(self, batch: _Batch) -> None:
        try:
            if batch.units:
                await batch.session.commit()
            else:
                await batch.session.rollback()
            batch.committed.set_result(None)
        except BaseException as exc:
            # Closing alone would leave SQLite's transaction open after a failed COMMIT.
            with contextlib.suppress(Exception):
                await batch.session.rollback()
            batch.committed.set_exception(exc)
            # Retrieved here too, so a batch whose units all left does not log it as lost.
            batch.committed.exception()
        finally:
            try:
                await batch.session.close()
            finally:
                self._turn.release()
