"""Reading a session's event log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.models import Session, SessionEvent


@dataclass(frozen=True, slots=True)
class SessionLog:
    session: Session
    events: list[SessionEvent]


async def load_session_log(
    sessions: async_sessionmaker[AsyncSession], account_id: int, sid: str
) -> SessionLog | None:
    async with sessions() as session:
        row = await session.scalar(
            select(Session).where(Session.sid == sid, Session.account_id == account_id)
        )
        if row is None:
            return None
        events = await session.scalars(
            select(SessionEvent).where(SessionEvent.session_id == row.id).order_by(SessionEvent.id)
        )
        return SessionLog(row, list(events))


async def recent_sessions(
    sessions: async_sessionmaker[AsyncSession], account_id: int, limit: int
) -> list[Session]:
    """The account's sessions, newest first."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Session)
            .where(Session.account_id == account_id)
            .order_by(Session.id.desc())
            .limit(limit)
        )
        return list(rows)
