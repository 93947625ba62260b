"""Bind status, as workers report it and `verbal carriers list` reads it.

The binds live in worker processes; the command that shows them runs elsewhere, maybe on
another machine. So every worker writes a row per bind to the shared database
(``carrier_binds``) every few seconds and deletes its rows when it stops, and the command
reads them. A row that has not been rewritten for `STALE_AFTER` intervals belongs to a
worker that died without deleting it; readers show it as such and the next worker to
start removes it. That is the whole design: no endpoint to find, no worker to ask, and
it works the same on SQLite and on PostgreSQL with many workers.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.carriers.smpp.client import BindStatus
from verbal.store.models import CarrierBindStatus

__all__ = ["STALE_AFTER", "ReportedBind", "publish", "read", "withdraw"]

# Intervals without a report after which a row is a dead worker's.
STALE_AFTER = 3
# Rows this old are removed by any worker that starts (a day: long enough to look into).
_FORGET_AFTER_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class ReportedBind:
    """One bind as its worker last reported it; ``stale`` if that was too long ago."""

    carrier: str
    bind: str
    owner: str
    mode: str
    state: str
    window: int
    in_flight: int
    submitted: int
    throttled: int
    rate: float
    bound_since: float | None
    last_error: str | None
    last_error_at: float | None
    updated_at: float
    stale: bool


async def publish(
    sessions: async_sessionmaker[AsyncSession],
    owner: str,
    carrier: str,
    binds: Sequence[tuple[BindStatus, float]],
) -> None:
    """Replace ``owner``'s rows for ``carrier`` with ``binds`` (each with its rate)."""
    now = time.time()
    async with sessions.begin() as session:
        await session.execute(
            delete(CarrierBindStatus).where(
                CarrierBindStatus.owner == owner, CarrierBindStatus.carrier == carrier
            )
        )
        session.add_all(
            CarrierBindStatus(
                carrier=carrier,
                bind=status.name,
                owner=owner,
                mode=status.mode.value,
                state=status.state.value,
                window=status.window,
                in_flight=status.in_flight,
                submitted=status.submitted,
                throttled=status.throttled,
                rate=rate,
                bound_since=status.bound_since,
                last_error=status.last_error[:512] if status.last_error else None,
                last_error_at=status.last_error_at,
                updated_at=now,
            )
            for status, rate in binds
        )


async def withdraw(
    sessions: async_sessionmaker[AsyncSession], owner: str, carrier: str | None = None
) -> None:
    """Delete ``owner``'s rows (for one carrier, or all), and every long-forgotten row."""
    async with sessions.begin() as session:
        mine = CarrierBindStatus.owner == owner
        if carrier is not None:
            mine = mine & (CarrierBindStatus.carrier == carrier)
        await session.execute(delete(CarrierBindStatus).where(mine))
        await session.execute(
            delete(CarrierBindStatus).where(
                CarrierBindStatus.updated_at < time.time() - _FORGET_AFTER_SECONDS
            )
        )


async def read(sessions: async_sessionmaker[AsyncSession], interval: float) -> list[ReportedBind]:
    """Every reported bind, by carrier and name; ``interval`` is how often workers report."""
    now = time.time()
    async with sessions() as session:
        rows = await session.scalars(
            select(CarrierBindStatus).order_by(
                CarrierBindStatus.carrier, CarrierBindStatus.bind, CarrierBindStatus.owner
            )
        )
        return [
            ReportedBind(
                carrier=row.carrier,
                bind=row.bind,
                owner=row.owner,
                mode=row.mode,
                state=row.state,
                window=row.window,
                in_flight=row.in_flight,
                submitted=row.submitted,
                throttled=row.throttled,
                rate=row.rate,
                bound_since=row.bound_since,
                last_error=row.last_error,
                last_error_at=row.last_error_at,
                updated_at=row.updated_at,
                stale=now - row.updated_at > STALE_AFTER * interval,
            )
            for row in rows
        ]
