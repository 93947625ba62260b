"""The durable job queue: a table that is both outbox and work list.

Producers add jobs inside their own transaction (`enqueue`), so a job exists exactly when
the change that caused it was committed. Workers `claim` due jobs by stamping a lease on
them; a job whose lease ran out (its worker died) is claimable again. A handler ends a job
with `finish` or `reschedule`, inside the same transaction as the work's own writes.

Jobs that share an `ordering_key` run strictly one after another in id order: a later job
is not claimable while an earlier one with the same key exists, however its retries go.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, event, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, aliased

from verbal.store.models import Job

Clock = Callable[[], float]
_WAKE_KEY = "verbal.dispatch.wake"
# The queue writes its rows with Core statements on the table, not through the ORM: jobs are
# never loaded as objects, and a unit-of-work flush, or the ORM's bookkeeping for a bulk
# DELETE or UPDATE (which first flushes everything the transaction added), cost several
# times the statement itself on the hot path (bench/results.md).
_JOBS = Job.__table__


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including the current one
    ordering_key: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    by_kind: dict[str, int]
    due: int
    lag_seconds: float


class JobQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        lease_seconds: float,
        skip_locked: bool,
        clock: Clock = time.time,
    ) -> None:
        self._sessions = sessions
        self.owner = owner
        self._lease_seconds = lease_seconds
        self._skip_locked = skip_locked
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    def wake(self) -> None:
        """Tell the listeners jobs were added (by a writer that does not go through
        `enqueue`, such as the journal)."""
        self._wake_all()

    def add_listener(self, wake: Callable[[], None]) -> None:
        """Call `wake` after any transaction that enqueued a job commits."""
        self._listeners.append(wake)

    async def enqueue(
        self,
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        ordering_key: str | None = None,
        delay: float = 0.0,
    ) -> None:
        now = self._clock()
        await session.execute(
            insert(_JOBS).values(
                kind=kind,
                payload=payload,
                ordering_key=ordering_key,
                run_at=now + delay,
                created_at=now,
                attempts=0,
            )
        )
        session.sync_session.info[_WAKE_KEY] = self._wake_all

    def _wake_all(self) -> None:
        for wake in self._listeners:
            wake()

    async def claim(self, limit: int, kinds: Collection[str]) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs of the given kinds (the ones this worker can run)."""
        now = self._clock()
        job = Job.__table__
        earlier = aliased(Job)
        due = (
            select(job.c.id)
            .where(
                job.c.run_at <= now,
                job.c.kind.in_(list(kinds)),
                or_(job.c.lease_expires.is_(None), job.c.lease_expires < now),
                ~exists().where(earlier.ordering_key == job.c.ordering_key, earlier.id < job.c.id),
            )
            .order_by(job.c.run_at, job.c.id)
            .limit(limit)
        )
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(job)
            .where(job.c.id.in_(due.scalar_subquery()))
            .values(
                lease_owner=self.owner,
                lease_expires=now + self._lease_seconds,
                attempts=job.c.attempts + 1,
            )
            .returning(job.c.id, job.c.kind, job.c.payload, job.c.attempts, job.c.ordering_key)
        )
        async with self._sessions.begin() as session:
            rows = (await session.execute(statement)).all()
        claimed = [ClaimedJob(r.id, r.kind, r.payload, r.attempts, r.ordering_key) for r in rows]
        claimed.sort(key=lambda c: c.id)
        return claimed

    def _still_ours(self, claimed: ClaimedJob) -> tuple[Any, ...]:
        # The attempt count tells two claims of one job apart: if our lease ran out and the
        # job was claimed again (even by this process), this claim's result is stale.
        return (
            _JOBS.c.id == claimed.id,
            _JOBS.c.lease_owner == self.owner,
            _JOBS.c.attempts == claimed.attempts,
        )

    async def finish(self, session: AsyncSession, claimed: ClaimedJob) -> None:
        await session.execute(delete(_JOBS).where(*self._still_ours(claimed)))

    async def reschedule(
        self, session: AsyncSession, claimed: ClaimedJob, delay: float, error: str
    ) -> None:
        await session.execute(
            update(_JOBS)
            .where(_JOBS.c.id == claimed.id, _JOBS.c.lease_owner == self.owner)
            .values(
                run_at=self._clock() + delay,
                lease_owner=None,
                lease_expires=None,
                last_error=error[:512],
            )
        )

    async def release_leases(self, *, everyone: bool = False) -> int:
        """Free leases held by this owner, or by anyone (a single-process restart)."""
        statement = (
            update(Job)
            .where(Job.lease_owner.is_not(None))
            .values(lease_owner=None, lease_expires=None)
        )
        if not everyone:
            statement = statement.where(Job.lease_owner == self.owner)
        async with self._sessions.begin() as session:
            result = await session.execute(statement)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def next_due(self) -> float | None:
        """When the next job becomes claimable, for an idle worker's sleep: the earliest
        run time of a free job, or the earliest lease to run out (its worker may be dead)."""
        claimable_at = case((Job.lease_expires.is_(None), Job.run_at), else_=Job.lease_expires)
        async with self._sessions() as session:
            value = await session.scalar(select(func.min(claimable_at)))
        return None if value is None else float(value)

    async def has_ordered_jobs(self, session: AsyncSession, ordering_key: str) -> bool:
        """Whether any job with this ordering key is still waiting or running."""
        found = await session.scalar(
            select(Job.id).where(Job.ordering_key == ordering_key).limit(1)
        )
        return found is not None

    async def stats(self) -> QueueStats:
        """How many jobs wait, by kind; how many are due and free; the oldest due one's age."""
        now = self._clock()
        free_and_due = (Job.run_at <= now) & (
            Job.lease_expires.is_(None) | (Job.lease_expires < now)
        )
        async with self._sessions() as session:
            # Rows are tuples (SQLAlchemy 2.1 deprecates `.tuples()`, which said so).
            rows = await session.execute(select(Job.kind, func.count()).group_by(Job.kind))
            by_kind = dict(rows.all())
            due, oldest = (
                await session.execute(
                    select(func.count(), func.min(Job.run_at)).where(free_and_due)
                )
            ).one()
        return QueueStats(
            by_kind={kind: int(count) for kind, count in by_kind.items()},
            due=int(due or 0),
            lag_seconds=max(0.0, now - float(oldest)) if oldest is not None else 0.0,
        )

    async def depth(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    wake = session.info.pop(_WAKE_KEY, None)
    if wake is not None:
        wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)
